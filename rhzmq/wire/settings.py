"""Every setting in one place: the environment variables rhzmq reads or sets, its default ports,
and its timeouts. Modules import their values from here; ``tests/test_layers.py`` checks that
every ``RHZMQ_*`` name the code mentions is listed in :data:`ENVIRONMENT`.
"""

from __future__ import annotations

#: Environment variables: name -> what it does (and who reads it).
ENVIRONMENT: dict[str, str] = {
    "RHZMQ_HOME": "where rhzmq keeps its state on a machine (default ~/.rhzmq): daemon state "
    "and log, keys, saved resources, env venvs, synced code (rhzmq.wire.config)",
    "RHZMQ_TOKEN": "the HTTP gateway's bearer token (rhzmq start, the daemon, the gateway); "
    "passed to child processes by environment, never argv",
    "RHZMQ_MAX_MESSAGE_BYTES": "largest message, 1 GiB (rhzmq.wire.limits)",
    "RHZMQ_MAX_INFLIGHT": "calls in flight per client, 10,000 (rhzmq.wire.limits)",
    "RHZMQ_MAX_OBJECTS": "objects per worker, 10,000 (rhzmq.wire.limits)",
    "RHZMQ_REBUILD_TIMEOUT": "seconds calls wait for a restarting worker, 30 (rhzmq.wire.limits)",
    "RHZMQ_HTTP_HEADER_TIMEOUT": "seconds the gateway waits for a request's headers, 10 "
    "(rhzmq.wire.limits)",
    "RHZMQ_HTTP_BODY_TIMEOUT": "seconds the gateway waits for a call's request body, 30 "
    "(rhzmq.wire.limits)",
    "RHZMQ_SYNC_LIMIT_MB": "largest project synced to an SSH cluster, 500 (clusters.ssh.code_sync)",
    "RHZMQ_RUNS_MAX_BYTES": "bytes of finished runs a cluster keeps, 512 MiB (rhzmq._runs)",
    "RHZMQ_RUNS_MAX_AGE": "seconds a finished run is kept, 7 days (rhzmq._runs)",
    "RHZMQ_RUN_LOG_BYTES": "bytes of output kept per run, 64 MiB (rhzmq._runs)",
    "RHZMQ_CALL_THREAD_POLICY": "batch (default): a worker's threads for sync calls move from "
    "the default scheduling policy to Linux's SCHED_BATCH, which what those calls start "
    "inherits; default (or off): they keep the worker's policy (worker._threads)",
    "RHZMQ_SPIN_US": "microseconds a waiting client may spin instead of sleeping, 500; 0 turns it "
    "off (rhzmq.wire.spin: adaptive, one spinner per process, never in the cluster's own "
    "processes)",
    "RHZMQ_WORKER": "set in every worker process: its worker name (cluster.on_this_cluster())",
    "RHZMQ_ENV": "set in every worker process: its env's name (rh.module(C)().env there)",
    "RHZMQ_NODE_INDEX": "set in every worker of a cluster: its host's index (0 is the head)",
    "RHZMQ_NODE_ADDRESS": "set in every worker of a cluster: its host's address",
    "RHZMQ_DEN_DB": "the registry's database URL (python -m den; default: SQLite in "
    "$RHZMQ_HOME/den/den.db); the place for a URL with a password, never argv",
    "RHZMQ_DEN_URL": "the registry's URL for rhzmq._den.DenClient when none is given",
    "RHZMQ_DEN_TOKEN": "the registry token DenClient uses when none is given",
    "RHZMQ_DEN_MASTER_KEY_FILE": "the registry's key for sealing secrets at rest (den._crypto; "
    "default $RHZMQ_HOME/den/master.key)",
}

#: Ports.
DEFAULT_GATEWAY_PORT = 32300  # the HTTP gateway, as in Runhouse
DEFAULT_SERVER_PORT = 32301  # an SSH cluster head's broker, for the other hosts
DEFAULT_DEN_PORT = 32400  # the resource registry (python -m den serve)

#: Liveness (Paranoid Pirate, see rhzmq.wire.protocol): seconds between heartbeats, and how many
#: silent intervals make a peer dead.
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_LIVENESS = 3

#: Timeouts, in seconds.
CONNECT_TIMEOUT = 10.0  # a client's first contact with a broker
START_TIMEOUT = 90.0  # the local daemon's start-up
STOP_TIMEOUT = 15.0  # a cluster's shutdown before its processes are killed
WORKER_START_TIMEOUT = 60.0  # an environment's workers registering
SSH_CONNECT_TIMEOUT = 15.0  # one SSH connection
NODE_INFO_TIMEOUT = 5.0  # one host's answer to status() before it is called down
HEAD_CONNECT_TIMEOUT = 30.0  # a node daemon reaching its head's broker
DESCRIBE_TTL = 2.0  # how long the gateway caches an object's description

#: A node daemon compares its workers with the head's list this often, and kills one the head has
#: not listed for UNREGISTERED_GRACE seconds (hung workers on hosts other than the head's).
REAP_INTERVAL = 2.0
UNREGISTERED_GRACE = 10.0

#: The gateway's request caps: the largest body it reads and how many connections it serves at
#: once (more get a 503, not a slower everything). How long headers and a body may take to
#: arrive: rhzmq.wire.limits.
MAX_HTTP_BODY = 64 * 1024 * 1024
HTTP_MAX_CONCURRENCY = 256

#: The web UIs' browser sessions (rhzmq.wire.websession): how long one lasts, and how many one
#: server process keeps (the oldest go first).
UI_SESSION_TTL = 8 * 3600.0
UI_MAX_SESSIONS = 10_000
