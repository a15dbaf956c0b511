"""Cloud providers by name, and their credentials from where the providers' own tools keep them.

A provider is named in one of three ways, resolved by :func:`driver_class`:

==========================  =====================================================================
``"aws"``, ``"gcp"``,       our names for libcloud's ``ec2``, ``gce`` and ``azure_arm`` drivers
``"azure"``
any libcloud provider       ``"ec2"``, ``"digital_ocean"``, ``"linode"``... (``libcloud.compute.
                            providers.Provider``), through ``libcloud.compute.providers.get_driver``
``"package.module:Class"``  a ``NodeDriver`` subclass of your own, imported by that path (here and,
                            at autostop, on the head: :mod:`.reaper` ships a one-file module
                            there); the tests' loopback driver is one
==========================  =====================================================================

Credentials (:func:`credentials`) are looked for in this order: what was passed explicitly
(``rh.cluster(..., credentials={...})``), then the provider's standard places — for AWS the
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` variables, then the
``AWS_PROFILE`` (or ``default``) section of ``~/.aws/credentials`` (``AWS_SHARED_CREDENTIALS_FILE``
moves it); for GCP the service-account file in ``GOOGLE_APPLICATION_CREDENTIALS``; for Azure the
``AZURE_TENANT_ID``/``AZURE_SUBSCRIPTION_ID``/``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``
variables. Nothing found is a :class:`~rhzmq.ClusterError` naming the provider, every place it
looked and what to set. Credentials never enter a saved config, a repr or a log line; the head
gets them in an owner-only file (:mod:`.reaper`).

``credentials=rh.provider_secret("aws")`` (or "azure") passes a saved secret explicitly.

An endpoint other than the provider's own (an EC2-compatible API, or a test server) is given with
``endpoint_url=`` or, for AWS, the SDKs' ``AWS_ENDPOINT_URL_EC2``/``AWS_ENDPOINT_URL`` variables.
"""

from __future__ import annotations

import configparser
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...wire.exceptions import ClusterError

#: Our provider names -> libcloud's.
ALIASES = {"aws": "ec2", "gcp": "gce", "azure": "azure_arm"}


def canonical(provider: str) -> str:
    """``"aws"`` for ``"ec2"`` and ``"aws"``, etc.; other names as given."""
    libcloud_name = ALIASES.get(provider, provider)
    for ours, theirs in ALIASES.items():
        if theirs == libcloud_name:
            return ours
    return provider


def driver_class(provider: str) -> type[Any]:
    """The libcloud ``NodeDriver`` class of a provider name (see the module docstring)."""
    if ":" in provider:
        module_name, _, attr = provider.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ClusterError(
                f"provider {provider!r}: cannot import {attr} from {module_name} ({exc}). A "
                "custom provider is 'package.module:DriverClass', importable here"
            ) from None
        return found  # type: ignore[no-any-return]
    from libcloud.compute.providers import Provider, get_driver

    name = ALIASES.get(provider, provider)
    try:
        return get_driver(name)
    except AttributeError:
        known = sorted(v for k, v in vars(Provider).items() if k.isupper() and isinstance(v, str))
        raise ClusterError(
            f"unknown provider {provider!r}: use 'aws', 'gcp', 'azure', a libcloud provider "
            f"({', '.join(known[:12])}, ...) or 'package.module:DriverClass'"
        ) from None


def provider_path(provider: str | type[Any]) -> str:
    """A provider given as a driver class becomes its ``module:Class`` name (saved configs and
    the head know it by that)."""
    if isinstance(provider, str):
        return provider
    return f"{provider.__module__}:{provider.__qualname__}"


@dataclass(frozen=True)
class Credentials:
    """How to build a provider's driver: positional and keyword arguments, and where they came
    from (for messages). ``repr`` shows neither keys nor secrets."""

    args: tuple[Any, ...] = field(repr=False)
    kwargs: dict[str, Any] = field(repr=False)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """For the head's owner-only credentials file, never for a saved config."""
        return {"args": list(self.args), "kwargs": self.kwargs, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Credentials:
        return cls(tuple(data["args"]), dict(data["kwargs"]), str(data.get("source", "")))


def _endpoint_kwargs(url: str | None) -> dict[str, Any]:
    if not url:
        return {}
    parts = urlsplit(url)
    if not parts.hostname:
        raise ClusterError(f"endpoint_url {url!r} is not a URL like https://host:port")
    secure = parts.scheme != "http"
    return {"host": parts.hostname, "port": parts.port or (443 if secure else 80), "secure": secure}


def _aws(explicit: dict[str, Any], endpoint_url: str | None) -> Credentials:
    looked = ["credentials={...}", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"]
    key = explicit.get("key") or explicit.get("aws_access_key_id")
    secret = explicit.get("secret") or explicit.get("aws_secret_access_key")
    token = explicit.get("token") or explicit.get("aws_session_token")
    source = "credentials={...}"
    if not (key and secret) and os.environ.get("AWS_ACCESS_KEY_ID"):
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        token, source = os.environ.get("AWS_SESSION_TOKEN"), "AWS_ACCESS_KEY_ID"
    if not (key and secret):
        path = Path(
            os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        ).expanduser()
        profile = os.environ.get("AWS_PROFILE") or "default"
        looked.append(f"[{profile}] in {path}")
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error as exc:
            raise ClusterError(f"aws: cannot read {path}: {exc}") from None
        if parser.has_section(profile):
            section = parser[profile]
            key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
            token, source = section.get("aws_session_token"), f"[{profile}] in {path}"
    if not (key and secret):
        raise ClusterError(
            f"no credentials for provider 'aws': looked in {', '.join(looked)}. Set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure` (writes "
            "~/.aws/credentials), or pass credentials={'key': ..., 'secret': ...}"
        )
    kwargs: dict[str, Any] = {"signature_version": "4"}  # EC2 refuses SigV2 in newer regions
    if token:
        kwargs["token"] = token
    url = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_EC2") or os.environ.get("AWS_ENDPOINT_URL")
    )
    kwargs.update(_endpoint_kwargs(url))
    return Credentials((key, secret), kwargs, source)


def _gcp(explicit: dict[str, Any]) -> Credentials:
    path = explicit.get("credential_file") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path or not Path(path).expanduser().is_file():
        raise ClusterError(
            "no credentials for provider 'gcp': looked in credentials={'credential_file': ...} "
            f"and GOOGLE_APPLICATION_CREDENTIALS ({path or 'not set'}). Make a service account "
            "key (`gcloud iam service-accounts keys create key.json --iam-account ...`) and set "
            "GOOGLE_APPLICATION_CREDENTIALS to its path"
        )
    try:
        info = json.loads(Path(path).expanduser().read_text())
        email, project = info["client_email"], explicit.get("project") or info["project_id"]
    except (ValueError, KeyError) as exc:
        raise ClusterError(
            f"gcp: {path} is not a service account key file (missing {exc}): make one with "
            "`gcloud iam service-accounts keys create`"
        ) from None
    return Credentials(
        (email, str(Path(path).expanduser())),
        {"project": project, "auth_type": "SA"},
        "GOOGLE_APPLICATION_CREDENTIALS",
    )


_AZURE = ("AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")


def _azure(explicit: dict[str, Any]) -> Credentials:
    names = ("tenant_id", "subscription_id", "key", "secret")
    values = [explicit.get(n) or os.environ.get(v) for n, v in zip(names, _AZURE, strict=True)]
    missing = [v for v, value in zip(_AZURE, values, strict=True) if not value]
    if missing:
        raise ClusterError(
            f"no credentials for provider 'azure': looked in credentials={{...}} and the "
            f"variables {', '.join(_AZURE)}; missing {', '.join(missing)}. Make a service "
            "principal (`az ad sp create-for-rbac`) and set them"
        )
    return Credentials(tuple(values), {}, "AZURE_* variables")


def _from_secret(provider: str, secret: Any) -> dict[str, Any]:
    """An ``rh.provider_secret(...)`` (issue 16) as explicit credentials."""
    values = dict(secret.values)
    if canonical(provider) == "aws":
        return {
            "key": values.get("access_key_id"),
            "secret": values.get("secret_access_key"),
            "token": values.get("session_token"),
        }
    if canonical(provider) == "azure":
        return {
            "tenant_id": values.get("AZURE_TENANT_ID"),
            "subscription_id": values.get("AZURE_SUBSCRIPTION_ID"),
            "key": values.get("AZURE_CLIENT_ID"),
            "secret": values.get("AZURE_CLIENT_SECRET"),
        }
    return values


def credentials(
    provider: str, explicit: Any = None, endpoint_url: str | None = None
) -> Credentials:
    """The driver arguments for ``provider`` (see the module docstring for the order).
    ``explicit`` is a dict of driver arguments or an ``rh.provider_secret(provider)``."""
    if explicit is not None and not isinstance(explicit, dict) and hasattr(explicit, "values"):
        explicit = _from_secret(provider, explicit)
    explicit = dict(explicit or {})
    name = canonical(provider)
    if name == "aws":
        return _aws(explicit, endpoint_url)
    if name == "gcp":
        return _gcp(explicit)
    if name == "azure":
        return _azure(explicit)
    # Any other driver: its own constructor's key/secret (and keyword arguments).
    args = tuple(explicit.pop(k) for k in ("key", "secret") if k in explicit)
    if not args and ":" in provider:  # a driver of your own may find its credentials itself
        return Credentials((), {**explicit, **_endpoint_kwargs(endpoint_url)}, "its own defaults")
    if not args:
        raise ClusterError(
            f"no credentials for provider {provider!r}: pass credentials={{'key': ..., "
            "'secret': ..., ...}} (the arguments of its libcloud driver)"
        )
    return Credentials(args, {**explicit, **_endpoint_kwargs(endpoint_url)}, "credentials={...}")


def make_driver(provider: str, creds: Credentials, region: str | None) -> Any:
    """A connected driver (no request made yet)."""
    cls = driver_class(provider)
    kwargs = dict(creds.kwargs)
    if region is not None:
        kwargs["datacenter" if canonical(provider) == "gcp" else "region"] = region
    try:
        return cls(*creds.args, **kwargs)
    except ValueError as exc:  # libcloud: "Invalid region: ..."
        raise ClusterError(f"provider {provider!r}: {exc}") from None
