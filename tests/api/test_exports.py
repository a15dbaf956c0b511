"""The public API is flat and complete (httpx-style): everything users need is ``rh.<name>``."""

from __future__ import annotations

import rhzmq as rh


def test_all_names_exist_and_are_public() -> None:
    for name in rh.__all__:
        assert hasattr(rh, name), name
    assert len(set(rh.__all__)) == len(rh.__all__)
    assert not [n for n in rh.__all__ if n.startswith("_") and n != "__version__"]
    for name in ("cluster", "function", "module", "Module", "here", "RhzmqError"):
        assert name in rh.__all__


def test_exception_tree_has_one_root() -> None:
    errors = [
        getattr(rh, n)
        for n in rh.__all__
        if isinstance(getattr(rh, n), type)
        and issubclass(getattr(rh, n), Exception)
        and n != "RemoteTraceback"
    ]
    assert len(errors) >= 10
    assert all(issubclass(e, rh.RhzmqError) for e in errors)
