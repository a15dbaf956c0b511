"""The worker's per-call short cuts keep their promises: decoded metas are shared but bounded,
and a meta that is not a map is still refused."""

from __future__ import annotations

import msgpack
import pytest

from rhzmq.wire.exceptions import ProtocolError
from worker import _worker


def test_a_meta_is_decoded_once_and_the_cache_stays_bounded() -> None:
    _worker._METAS.clear()
    frame = msgpack.packb({"m": "add", "o": True})
    first = _worker._call_meta(frame)
    assert first == {"m": "add", "o": True}
    assert _worker._call_meta(bytes(frame)) is first  # the same frame again: no decoding
    for i in range(3 * _worker._MAX_METAS):  # a client making up metas
        _worker._call_meta(msgpack.packb({"m": f"m{i}"}))
        assert len(_worker._METAS) <= _worker._MAX_METAS


def test_a_large_meta_is_decoded_but_not_kept() -> None:
    _worker._METAS.clear()
    frame = msgpack.packb({"m": "x" * 1000})
    assert _worker._call_meta(frame) == {"m": "x" * 1000}
    assert not _worker._METAS


def test_a_meta_that_is_not_a_map_is_refused_and_not_kept() -> None:
    _worker._METAS.clear()
    with pytest.raises(ProtocolError):
        _worker._call_meta(msgpack.packb([1, 2]))
    assert not _worker._METAS
