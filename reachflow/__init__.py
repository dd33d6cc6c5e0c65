"""reachflow: a durable, compliant engine for multi-step outreach workflows."""

__all__ = ["__version__"]

__version__ = "0.1.0"
