"""The Temporal tests use the session's dev server: ``temporal_server`` in tests/conftest.py."""
