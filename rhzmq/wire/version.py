"""The package version and the wire-protocol version (they change independently)."""

__version__ = "0.1.0"

#: Bumped whenever a frame layout or a command's meaning changes. Every header carries it, so a
#: client, broker and worker that disagree fail with :class:`rhzmq.VersionMismatch` on the first
#: message instead of misreading each other.
PROTOCOL_VERSION = 1
