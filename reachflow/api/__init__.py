"""The HTTP surfaces. ``create_app(services)`` builds the app; nothing lives at module level."""

from reachflow.api.app import create_app

__all__ = ["create_app"]
