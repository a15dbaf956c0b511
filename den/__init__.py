"""Den: rhzmq's resource registry — users, groups, versioned resources, sharing (a server:
``python -m den serve``; the library's client is ``rhzmq._den.DenClient``)."""

from ._app import create_app
from ._db import Database
from ._store import Store

__all__ = ["Database", "Store", "create_app"]
