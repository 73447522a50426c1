"""The thin Flask layer: adapts HTTP to the framework-free protocol core."""

from sts.web.app import create_app

__all__ = ["create_app"]
