"""rhzmq worker processes: hold named objects, run calls, stream output back (``python -m worker``)."""

from ._worker import Worker, describe, run

__all__ = ["Worker", "describe", "run"]
