"""Runs ``decide`` durably: the embedded engine and worker, clocks, application services."""
