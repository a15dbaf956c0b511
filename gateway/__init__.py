"""The rhzmq HTTP gateway: name/method routes for non-Python callers (``python -m gateway``)."""

from ._app import create_app

__all__ = ["create_app"]
