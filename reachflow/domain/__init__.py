"""The pure core: no I/O, no clock, no database, no framework.

Everything here takes time and identity as arguments and returns values, so it can be
property-tested and replayed.
"""
