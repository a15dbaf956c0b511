"""One exception -> HTTP table serves every error path of the gateway; nothing falls through."""

from __future__ import annotations

import rhzmq as rh
from gateway._app import HTTP_STATUS, http_status
from rhzmq.wire.protocol import STATUS_ERRORS, Status


def test_every_status_has_an_error_type_with_an_http_status() -> None:
    for status in Status:
        if status == Status.OK:
            continue
        assert status in STATUS_ERRORS, f"{status!r} names no exception"
        assert STATUS_ERRORS[status] in HTTP_STATUS, f"{status!r} has no HTTP status"


def test_every_public_exception_has_its_own_http_status() -> None:
    public = [
        getattr(rh, name)
        for name in rh.__all__
        if isinstance(getattr(rh, name), type) and issubclass(getattr(rh, name), rh.RhzmqError)
    ]
    assert len(public) >= 15
    missing = [cls.__name__ for cls in public if cls not in HTTP_STATUS]
    assert missing == []


def test_the_statuses_callers_rely_on() -> None:
    assert http_status(rh.ObjectNotFound) == 404
    assert http_status(rh.CallTimeout) == 504
    assert http_status(rh.WorkerDiedError) == 503
    assert http_status(rh.LimitExceeded) == 429
    assert http_status(rh.RemoteError) == 500
    assert http_status(rh.ClusterNotRunning) == 503

    class Unmapped(rh.CallError):
        pass

    assert http_status(Unmapped) == 500  # its nearest mapped base decides
    assert http_status(KeyError) == 500
