"""The rhzmq daemon (``python -m rhzmqd``): wires a broker, a node supervisor, node agents and the
HTTP gateway into one process per host. It stands above the servers (``broker``, ``worker``,
``gateway``) and the shared layer (``rhzmq.wire``); the library (``rhzmq``) never imports it, it
only starts it as a process. ``python -m rhzmqd.remote probe|stop`` is what a client runs on a
host over SSH.
"""
