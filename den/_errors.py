"""What the registry refuses, one class per kind of refusal.

The store raises these; ``den._app.HTTP_STATUS`` is the one table that turns each into an HTTP
status, and the class name is the error's ``type`` in the JSON body
(``{"error": {"type": "PreconditionFailed", "message": ..., "etag": ...}}``). Keyword arguments
become further fields of that body (never a token: the messages name names, not secrets).
"""

from __future__ import annotations

from typing import Any


class DenError(Exception):
    """Root of the registry's refusals; ``extra`` goes into the error body beside the message."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BadRequest(DenError):
    """The request is malformed: not JSON, a bad name, a bad query parameter."""


class Unauthorized(DenError):
    """No token, or one that is unknown or revoked."""


class Forbidden(DenError):
    """The token's user may not do this (a read share saving, a non-admin creating users)."""


class NotFound(DenError):
    """No such resource, user, group or token (or none this user may see)."""


class Conflict(DenError):
    """The request contradicts what is stored: a name taken, a resource of another type."""


class PreconditionFailed(DenError):
    """``If-Match`` names a version that is no longer the latest (or ``If-None-Match: *`` met an
    existing resource): someone else saved first."""


class PreconditionRequired(DenError):
    """Saving over an existing resource without ``If-Match``: say which version you changed."""


class Invalid(DenError):
    """The body is JSON but not what the route takes (a missing field, a wrong type)."""


class PayloadTooLarge(DenError):
    """The body is larger than the server takes."""


class UnsupportedMediaType(DenError):
    """A body that is not ``application/json``."""
