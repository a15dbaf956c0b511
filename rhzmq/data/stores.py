"""Object stores as systems of data resources, through apache-libcloud's storage drivers.

``rh.folder("bucket/prefix", system="s3")`` names a bucket and a prefix in it; the store itself
is an :class:`ObjectStore`: a provider (``s3``, ``gs``, ``azure``), an endpoint (an
S3-compatible server such as MinIO, Ceph or moto at ``endpoint_url``) and a region. That is all
a saved resource keeps of it: **credentials are never in a config, a repr or a log**. They are
found where each provider's own tools look, in this order:

===========  ==================================================================================
provider     credentials
===========  ==================================================================================
``s3``       ``ObjectStore(..., key=, secret=, token=)``; ``AWS_ACCESS_KEY_ID`` /
             ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; the ``AWS_PROFILE`` (else
             ``default``) section of ``AWS_SHARED_CREDENTIALS_FILE`` (else ``~/.aws/credentials``).
             Endpoint: ``endpoint_url=``, else ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``;
             region: ``region=``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1.
``gs``       arguments; else ``GOOGLE_APPLICATION_CREDENTIALS`` (a service account's JSON key
             file: its ``client_email``, the file, its ``project_id``). *Not tested*: no
             emulator serves the XML API that libcloud's Google Storage driver speaks, and the
             driver cannot be pointed at another host (see docs/security.md).
``azure``    arguments; else ``AZURE_STORAGE_ACCOUNT`` + ``AZURE_STORAGE_KEY``, or
             ``AZURE_STORAGE_CONNECTION_STRING``. Endpoint (Azurite, Azure Stack):
             ``endpoint_url=``, else the connection string's ``BlobEndpoint``. Tested against
             Azurite through libcloud's Azure Blobs driver.
===========  ==================================================================================

When a cluster does the work (``folder_on_cluster.to("s3")``), the client finds the credentials
as above and hands them to that one call (over the cluster's encrypted connection); the cluster
keeps them in memory for the call only. The secrets issue's provider secrets plug in at
:func:`find_credentials`: one more place, looked in first.

Libcloud's errors become :class:`~rhzmq.DataError`\\ s naming the store, the bucket and the fix
(:func:`mapped`).
"""

from __future__ import annotations

import configparser
import contextlib
import contextvars
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..wire.exceptions import DataError, DataNotFound, DataPermissionError, NoCredentials

PROVIDERS = ("s3", "gs", "azure")
SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "azure", "azure": "azure", "abfs": "azure"}

#: Credentials handed to the call running now (a cluster's worker doing a copy for a client).
_given: contextvars.ContextVar[dict[str, dict[str, str]] | None] = contextvars.ContextVar(
    "rhzmq_data_credentials", default=None
)


@dataclass
class ObjectStore:
    """A provider's object storage, optionally at a custom endpoint (S3-compatible servers)."""

    provider: str = "s3"
    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = field(default=None, repr=False, compare=False)
    secret: str | None = field(default=None, repr=False, compare=False)
    token: str | None = field(default=None, repr=False, compare=False)
    project: str | None = None  # gs only

    def __post_init__(self) -> None:
        self.provider = SCHEMES.get(self.provider, self.provider)
        if self.provider not in PROVIDERS:
            raise ValueError(
                f"unknown object store {self.provider!r}: use one of {', '.join(PROVIDERS)}"
            )
        if self.provider == "s3":
            self.endpoint_url = (
                self.endpoint_url
                or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL")
                or None
            )
            self.region = (
                self.region
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or "us-east-1"
            )
        if self.provider == "azure" and not self.endpoint_url:
            blob_endpoint = _connection_string().get("BlobEndpoint", "")
            if blob_endpoint:  # the account is in the path: libcloud puts it back there
                url = urlsplit(blob_endpoint)
                self.endpoint_url = f"{url.scheme}://{url.netloc}"
        self._driver: Any = None

    # -- what is saved -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """What a saved resource keeps of the store: never its credentials."""
        out: dict[str, Any] = {"type": "store", "provider": self.provider}
        for attr in ("endpoint_url", "region", "project"):
            if getattr(self, attr):
                out[attr] = getattr(self, attr)
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ObjectStore:
        return cls(**{k: v for k, v in config.items() if k != "type"})

    @property
    def ident(self) -> str:
        """One string per store (credentials are keyed by it)."""
        return f"{self.provider}:{self.endpoint_url or ''}"

    def describe(self) -> str:
        return f"{self.provider}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def __getstate__(self) -> dict[str, Any]:
        # Pickled (a stub sent to a cluster, a blob): without credentials or the live driver.
        return {**self.config(), "type": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.pop("type", None)
        self.__init__(**state)  # type: ignore[misc]

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """The credentials to use (see the module docstring); NoCredentials lists the places."""
        return find_credentials(self)

    # -- the driver ----------------------------------------------------------------------------

    def driver(self) -> Any:
        if self._driver is None:
            self._driver = _make_driver(self, self.credentials())
        return self._driver


def find_credentials(store: ObjectStore) -> dict[str, str]:
    """Where credentials come from, in order (the module docstring's table). The secrets
    issue's ``rh.provider_secret(provider)`` plugs in here, before the environment."""
    given = (_given.get() or {}).get(store.ident)
    if given:
        return given
    if store.key and (store.secret or store.provider == "gs"):
        return {
            k: v
            for k, v in (
                ("key", store.key),
                ("secret", store.secret or ""),
                ("token", store.token or ""),
            )
            if v
        }
    if store.provider == "s3":
        return _aws_credentials()
    if store.provider == "gs":
        return _gcs_credentials()
    return _azure_credentials()


def _aws_credentials() -> dict[str, str]:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        out = {"key": key, "secret": secret}
        if os.environ.get("AWS_SESSION_TOKEN"):
            out["token"] = os.environ["AWS_SESSION_TOKEN"]
        return out
    path = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()
    profile = os.environ.get("AWS_PROFILE") or "default"
    parser = configparser.ConfigParser()
    with contextlib.suppress(OSError, configparser.Error):
        parser.read(path)
    if parser.has_section(profile):
        section = parser[profile]
        if section.get("aws_access_key_id") and section.get("aws_secret_access_key"):
            out = {"key": section["aws_access_key_id"], "secret": section["aws_secret_access_key"]}
            if section.get("aws_session_token"):
                out["token"] = section["aws_session_token"]
            return out
    raise NoCredentials(
        "no S3 credentials found: looked in the arguments (rh.object_store('s3', key=, "
        "secret=)), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and profile "
        f"[{profile}] of {path}. Set one of them (e.g. `aws configure`)."
    )


def _gcs_credentials() -> dict[str, str]:
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        try:
            info = json.loads(Path(path).expanduser().read_text())
            return {
                "key": str(info["client_email"]),
                "secret": str(Path(path).expanduser()),
                "project": str(info.get("project_id", "")),
            }
        except (OSError, ValueError, KeyError) as exc:
            raise NoCredentials(
                f"GOOGLE_APPLICATION_CREDENTIALS={path} is not a service account key file ({exc})"
            ) from None
    raise NoCredentials(
        "no Google Cloud Storage credentials found: looked in the arguments "
        "(rh.object_store('gs', key=, secret=)) and GOOGLE_APPLICATION_CREDENTIALS. Point it "
        "at a service account's JSON key file."
    )


def _azure_credentials() -> dict[str, str]:
    account, key = os.environ.get("AZURE_STORAGE_ACCOUNT"), os.environ.get("AZURE_STORAGE_KEY")
    if account and key:
        return {"key": account, "secret": key}
    parts = _connection_string()
    if parts.get("AccountName") and parts.get("AccountKey"):
        return {"key": parts["AccountName"], "secret": parts["AccountKey"]}
    raise NoCredentials(
        "no Azure Blob Storage credentials found: looked in the arguments (rh.object_store("
        "'azure', key=account, secret=account key)), AZURE_STORAGE_ACCOUNT / "
        "AZURE_STORAGE_KEY and AZURE_STORAGE_CONNECTION_STRING."
    )


def _connection_string() -> dict[str, str]:
    """AZURE_STORAGE_CONNECTION_STRING's ``Name=value;`` pairs."""
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    return dict(p.strip().split("=", 1) for p in conn.split(";") if "=" in p)


@contextlib.contextmanager
def given(credentials: dict[str, dict[str, str]]) -> Iterator[None]:
    """Use ``credentials`` (store ident -> credentials) for stores during the block: how a
    cluster's worker uses what the client found, for one call only."""
    token = _given.set(credentials)
    try:
        yield
    finally:
        _given.reset(token)


def _make_driver(store: ObjectStore, creds: dict[str, str]) -> Any:
    from libcloud.storage.providers import get_driver
    from libcloud.storage.types import Provider

    if store.provider == "s3":
        kwargs: dict[str, Any] = {"region": store.region}
        if creds.get("token"):
            kwargs["token"] = creds["token"]
        if store.endpoint_url:
            url = urlsplit(store.endpoint_url)
            if not url.hostname:
                raise ValueError(f"endpoint_url {store.endpoint_url!r} has no host")
            kwargs.update(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 80),
                secure=url.scheme == "https",
            )
        return get_driver(Provider.S3)(creds["key"], creds["secret"], **kwargs)
    if store.provider == "gs":
        return get_driver(Provider.GOOGLE_STORAGE)(
            creds["key"], creds["secret"], project=creds.get("project") or store.project
        )
    kwargs = {}
    if store.endpoint_url:  # Azurite and other emulators
        url = urlsplit(store.endpoint_url)
        kwargs.update(host=url.hostname, port=url.port, secure=url.scheme == "https")
    return get_driver(Provider.AZURE_BLOBS)(creds["key"], creds["secret"], **kwargs)


def split_path(path: str) -> tuple[str | None, str, str]:
    """``("s3", "bucket", "prefix")`` from ``s3://bucket/prefix``; ``(None, "bucket",
    "prefix")`` from ``bucket/prefix`` or ``/bucket/prefix``."""
    scheme = None
    if "://" in path:
        raw, path = path.split("://", 1)
        scheme = SCHEMES.get(raw)
        if scheme is None:
            raise ValueError(f"unknown scheme {raw}:// in {path!r}: use s3://, gs:// or az://")
    bucket, _, prefix = path.strip("/").partition("/")
    if not bucket:
        raise ValueError(
            f"an object store path starts with its bucket: 'bucket/prefix', got {path!r}"
        )
    return scheme, bucket, prefix.strip("/")


@contextlib.contextmanager
def mapped(store: ObjectStore, bucket: str, what: str) -> Iterator[None]:
    """Libcloud's exceptions as DataErrors naming the store, the bucket and the fix."""
    from libcloud.common.types import InvalidCredsError, LibcloudError
    from libcloud.storage.types import ContainerDoesNotExistError, ObjectDoesNotExistError

    where = f"{store.describe()}, bucket {bucket!r}"
    try:
        yield
    except ContainerDoesNotExistError:
        raise DataNotFound(
            f"bucket {bucket!r} does not exist on {store.describe()} ({what}). Create it "
            f"(rh.folder({bucket!r}, system={store.provider!r}).mkdir()) or check its name."
        ) from None
    except ObjectDoesNotExistError as exc:
        raise DataNotFound(
            f"no object {getattr(exc, 'object_name', '') or what!r} in {where}"
        ) from None
    except InvalidCredsError as exc:
        raise DataPermissionError(
            f"{store.describe()} refused {what} in bucket {bucket!r} for these credentials "
            f"({_short(exc)}): check the key's permissions on the bucket, or use other "
            "credentials (see rhzmq.data.stores)"
        ) from None
    except LibcloudError as exc:
        text = _short(exc)
        if "403" in text or "AccessDenied" in text or "Forbidden" in text:
            raise DataPermissionError(
                f"{store.describe()} refused {what} in bucket {bucket!r}: {text}"
            ) from None
        raise DataError(f"{what} failed on {where}: {text}") from None
    except (OSError, ConnectionError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot reach {where} ({what}): {exc}") from None


def _short(exc: BaseException) -> str:
    value = getattr(exc, "value", None)
    text = str(value if value is not None else exc)
    return text if len(text) < 300 else text[:300] + "..."
