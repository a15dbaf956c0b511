"""The rhzmq broker: one ROUTER socket per cluster routing calls to workers (``python -m broker``)."""

from ._broker import Broker, NodeHooks, WorkerInfo

__all__ = ["Broker", "NodeHooks", "WorkerInfo"]
