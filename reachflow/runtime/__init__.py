"""Runtimes that carry ``decide`` durably (``embedded`` on the SQL store), with the clocks and the
compliance shell they share."""
