"""The rhzmq broker: one ROUTER socket per cluster routing calls to workers (``python -m broker``)."""

from ._broker import NODE_GROUP, Broker, NodeHooks, WorkerInfo

__all__ = ["NODE_GROUP", "Broker", "NodeHooks", "WorkerInfo"]
