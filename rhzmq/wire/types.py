"""The vocabulary every module shares: frames, identities, call ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

#: One ZeroMQ frame as we send it: bytes, or any buffer (memoryview, NumPy data) sent zero-copy.
Frame: TypeAlias = bytes | memoryview
#: A multipart message.
Frames: TypeAlias = Sequence[Frame]
#: A ROUTER routing id (5 bytes for peers the broker names itself).
Identity: TypeAlias = bytes
