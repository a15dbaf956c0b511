"""API tokens: made here, shown once, stored only as a hash.

A token is ``den_`` + 32 random bytes (``secrets.token_urlsafe``). The database keeps its SHA-256
and nothing else of it: whoever reads the database (a backup, a stolen file) learns no token.
A plain, unsalted hash is enough for a secret with 256 random bits (salts and slow hashes are for
passwords people choose); it lets a request find its token by an index on the hash, and the
found row's hash is compared with :func:`hmac.compare_digest` as well, so no comparison's time
depends on how much of a guess was right.

Tokens never appear in a URL, a log line, a ``repr`` or an error message: only the ``Authorization``
header carries them, and only :func:`new_token`'s caller sees one, once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "den_"
#: Longest Authorization value looked at: a real token is ~47 characters.
MAX_TOKEN = 256


def new_token() -> str:
    """A fresh token (shown to its owner once; only :func:`token_hash` of it is stored)."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The hex SHA-256 stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(stored: str, given: str) -> bool:
    """Compare two hashes in constant time."""
    return hmac.compare_digest(stored.encode(), given.encode())


def bearer(authorization: bytes) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, value = authorization.partition(b" ")
    value = value.strip()
    if scheme.lower() != b"bearer" or not value or len(value) > MAX_TOKEN:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None
