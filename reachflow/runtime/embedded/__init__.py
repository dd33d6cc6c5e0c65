"""The embedded runtime: batch stages around ``decide`` on the SQL store, and its worker."""
