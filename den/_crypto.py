"""Secrets sealed at rest: envelope encryption with a key the database never holds.

A resource of type ``secret`` is stored sealed: its config (the values) is encrypted with a fresh
256-bit data key (AES-GCM), and the data key with the registry's **master key** (AES-GCM, its own
nonce). The database row holds ``{"sealed": {"v": 1, "kid", "key", "data"}}``: the wrapped data
key and the ciphertext, base64. The master key lives in a file the database never sees:
``$RHZMQ_DEN_MASTER_KEY_FILE``, else ``$RHZMQ_HOME/den/master.key`` (32 random bytes, made 0600
at first use). Losing it loses the secrets; a different key is refused by name (``kid``, the
first bytes of the key's SHA-256), never silently misread. A sealed version's content hash is an
HMAC with the master key, so equal secrets are not recognisable by their hash (a plain SHA-256 of
a short password can be guessed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rhzmq.wire import config as _config

ENV_KEY_FILE = "RHZMQ_DEN_MASTER_KEY_FILE"
_DATA_AAD = b"rhzmq-den-secret-v1"
_KEY_AAD = b"rhzmq-den-data-key-v1"


def key_file() -> Path:
    return Path(os.environ.get(ENV_KEY_FILE) or _config.home() / "den" / "master.key")


class Sealer:
    """Seals and opens secret configs with one master key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the registry's master key must be 32 bytes")
        self._key = AESGCM(key)
        self._mac_key = hashlib.sha256(b"content-hash" + key).digest()
        self.kid = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: Path | None = None) -> Sealer:
        """The master key in ``path`` (made there, 0600, if missing)."""
        path = path or key_file()
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = os.urandom(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it meanwhile: use theirs
                return cls(path.read_bytes())
            with os.fdopen(fd, "wb") as f:
                f.write(key)
            return cls(key)

    @staticmethod
    def is_sealed(config: Any) -> bool:
        return isinstance(config, dict) and set(config) == {"sealed"}

    def seal(self, config: dict[str, Any]) -> dict[str, Any]:
        data_key = AESGCM.generate_key(bit_length=256)
        n1, n2 = os.urandom(12), os.urandom(12)
        plain = json.dumps(config, sort_keys=True).encode()
        data = n1 + AESGCM(data_key).encrypt(n1, plain, _DATA_AAD)
        wrapped = n2 + self._key.encrypt(n2, data_key, _KEY_AAD)
        return {
            "sealed": {
                "v": 1,
                "kid": self.kid,
                "key": base64.b64encode(wrapped).decode(),
                "data": base64.b64encode(data).decode(),
            }
        }

    def open(self, stored: dict[str, Any]) -> dict[str, Any]:
        box = stored["sealed"]
        if box.get("kid") != self.kid:
            raise ValueError(
                f"this secret was sealed with master key {box.get('kid')}, not this registry's "
                f"({self.kid}): start the registry with the key file it was saved under"
            )
        wrapped, data = base64.b64decode(box["key"]), base64.b64decode(box["data"])
        data_key = self._key.decrypt(wrapped[:12], wrapped[12:], _KEY_AAD)
        plain = AESGCM(data_key).decrypt(data[:12], data[12:], _DATA_AAD)
        opened: dict[str, Any] = json.loads(plain)
        return opened

    def digest(self, config: dict[str, Any]) -> str:
        """The content hash of a secret: HMAC-SHA256 with a key derived from the master key."""
        return hmac.new(
            self._mac_key, json.dumps(config, sort_keys=True).encode(), hashlib.sha256
        ).hexdigest()
