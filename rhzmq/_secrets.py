"""Secrets: provider credentials, SSH keys and custom values, kept safely and sent where needed.

::

    aws = rh.provider_secret("aws")                 # read from ~/.aws/credentials + AWS_* now
    hf = rh.provider_secret("huggingface")          # HF_TOKEN or ~/.cache/huggingface/token
    db = rh.secret("db", values={"DB_PASSWORD": "..."})
    e = rh.env(name="train", reqs=[...], secrets=[aws, hf, "github", db])  # names resolve late
    rh.function(train).to(cluster, env=e)           # the secrets reach e's workers
    aws.save(); rh.Secret.list(); aws.share("bob")  # like every resource (registry: sealed)

**Delivery.** A secret in an env's ``secrets`` is part of the env's definition: on each host the
env's workers run on, the daemon writes the secret's files into an owner-only directory of that
env (``$RHZMQ_HOME/secrets/<env>/``, files 0600) and sets its variables in the env's workers —
variables point the provider's tools at those files (``AWS_SHARED_CREDENTIALS_FILE``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``HF_TOKEN_PATH``, ``GH_CONFIG_DIR``, ``GIT_SSH_COMMAND``...),
so nothing of the user's own home on the host is overwritten. Deleting the env, or stopping the
cluster, removes the directory. ``secret.to(cluster, env=None)`` delivers to workers already
running (the default worker, or ``env``'s) until they restart.

**Storage.** Saved on this machine, a secret is a 0600 file in the store; in a registry its
values are sealed (envelope encryption with the registry's own key, never in its database) and
returned only to users with access, every read audited (docs/den.md).

**Never displayed**: a secret's ``repr`` masks its values, an env's config and ``repr`` name its
secrets only, ``status()`` and logs never carry them, and ``rhzmq secrets show`` masks them
unless asked to ``--reveal`` (and confirmed).
"""

from __future__ import annotations

import configparser
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._portal import run_sync
from ._store import Resource, list_saved, plain_name
from .wire.exceptions import SecretError
from .wire.secrets import DIR, fill, secrets_dir, write_files

if TYPE_CHECKING:
    from .clusters import Cluster


@dataclass(frozen=True)
class Provider:
    """How one provider's credentials are read here and laid out on a worker's host."""

    name: str
    read: Callable[[Path], dict[str, str]]  # home -> values (raises SecretError if none)
    files: Callable[[dict[str, str]], dict[str, str]]  # values -> {relative path: content}
    env_vars: Callable[[dict[str, str]], dict[str, str]]  # values -> {VAR: value or DIR path}


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _missing(provider: str, looked: str, fix: str) -> SecretError:
    return SecretError(f"no {provider} credentials found: looked in {looked}. {fix}")


# -- the providers ---------------------------------------------------------------------------------


def _aws_read(home: Path) -> dict[str, str]:
    key, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
    values: dict[str, str] = {}
    profile = _env("AWS_PROFILE") or "default"
    creds = Path(_env("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    if key and secret:
        values = {"access_key_id": key, "secret_access_key": secret}
        token = _env("AWS_SESSION_TOKEN")
        if token:
            values["session_token"] = token
    else:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(creds)
        if not parser.has_section(profile) or not parser.get(
            profile, "aws_access_key_id", fallback=""
        ):
            raise _missing(
                "aws",
                f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and {creds} [{profile}]",
                "Run `aws configure`, set the variables, or pass values={...}",
            )
        section = parser[profile]
        values = {
            "access_key_id": section["aws_access_key_id"],
            "secret_access_key": section.get("aws_secret_access_key", ""),
        }
        if section.get("aws_session_token"):
            values["session_token"] = section["aws_session_token"]
    region = _env("AWS_REGION", "AWS_DEFAULT_REGION")
    if not region:
        config = configparser.ConfigParser(interpolation=None)
        config.read(Path(_env("AWS_CONFIG_FILE") or home / ".aws" / "config"))
        section_name = "default" if profile == "default" else f"profile {profile}"
        region = config.get(section_name, "region", fallback=None)
    if region:
        values["region"] = region
    return values


def _aws_files(v: dict[str, str]) -> dict[str, str]:
    creds = (
        f"[default]\naws_access_key_id = {v['access_key_id']}\n"
        f"aws_secret_access_key = {v['secret_access_key']}\n"
    )
    if v.get("session_token"):
        creds += f"aws_session_token = {v['session_token']}\n"
    files = {"aws/credentials": creds}
    if v.get("region"):
        files["aws/config"] = f"[default]\nregion = {v['region']}\n"
    return files


def _aws_vars(v: dict[str, str]) -> dict[str, str]:
    out = {
        "AWS_SHARED_CREDENTIALS_FILE": f"{DIR}/aws/credentials",
        "AWS_ACCESS_KEY_ID": v["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": v["secret_access_key"],
    }
    if v.get("session_token"):
        out["AWS_SESSION_TOKEN"] = v["session_token"]
    if v.get("region"):
        out.update(AWS_CONFIG_FILE=f"{DIR}/aws/config", AWS_DEFAULT_REGION=v["region"])
    return out


def _gcp_read(home: Path) -> dict[str, str]:
    path = Path(
        _env("GOOGLE_APPLICATION_CREDENTIALS")
        or home / ".config" / "gcloud" / "application_default_credentials.json"
    )
    try:
        text = path.read_text()
        json.loads(text)
    except (OSError, ValueError):
        raise _missing(
            "gcp",
            f"GOOGLE_APPLICATION_CREDENTIALS and {path}",
            "Run `gcloud auth application-default login`, or point "
            "GOOGLE_APPLICATION_CREDENTIALS at a service account file",
        ) from None
    values = {"credentials_json": text}
    project = _env("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
    if project:
        values["project"] = project
    return values


def _gcp_vars(v: dict[str, str]) -> dict[str, str]:
    out = {"GOOGLE_APPLICATION_CREDENTIALS": f"{DIR}/gcp/credentials.json"}
    if v.get("project"):
        out["GOOGLE_CLOUD_PROJECT"] = v["project"]
    return out


AZURE_VARS = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID")


def _azure_read(home: Path) -> dict[str, str]:
    values = {n: os.environ[n] for n in AZURE_VARS if os.environ.get(n)}
    if not {"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"} <= set(values):
        raise _missing(
            "azure",
            ", ".join(AZURE_VARS),
            "Set a service principal's AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID",
        )
    return values


def _hf_read(home: Path) -> dict[str, str]:
    token = _env("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    hf_home = Path(_env("HF_HOME") or home / ".cache" / "huggingface")
    path = Path(_env("HF_TOKEN_PATH") or hf_home / "token")
    if not token:
        try:
            token = path.read_text().strip()
        except OSError:
            token = None
    if not token:
        raise _missing(
            "huggingface", f"HF_TOKEN and {path}", "Run `huggingface-cli login` or set HF_TOKEN"
        )
    return {"token": token}


def _gh_read(home: Path) -> dict[str, str]:
    token = _env("GH_TOKEN", "GITHUB_TOKEN")
    path = Path(_env("GH_CONFIG_DIR") or home / ".config" / "gh") / "hosts.yml"
    if not token:
        try:  # hosts.yml: "github.com:\n    oauth_token: gho_..." (no YAML parser needed)
            block = path.read_text().split("github.com:", 1)[1]
            found = re.search(r"^\s+oauth_token:\s*(\S+)", block, re.MULTILINE)
            token = found.group(1).strip("'\"") if found else None
        except (OSError, IndexError):
            token = None
    if not token:
        raise _missing("github", f"GH_TOKEN, GITHUB_TOKEN and {path}", "Run `gh auth login`")
    return {"token": token}


def _lambda_read(home: Path) -> dict[str, str]:
    key = _env("LAMBDA_API_KEY")
    path = home / ".lambda_cloud" / "lambda_keys"
    if not key:
        try:
            found = re.search(r"api_key\s*=\s*(\S+)", path.read_text())
            key = found.group(1) if found else None
        except OSError:
            key = None
    if not key:
        raise _missing("lambda", f"LAMBDA_API_KEY and {path}", "Set LAMBDA_API_KEY")
    return {"api_key": key}


def _ssh_read(home: Path) -> dict[str, str]:
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        key = home / ".ssh" / name
        if key.exists():
            values = {"key_name": name, "private_key": key.read_text()}
            pub = key.with_suffix(".pub")
            if pub.exists():
                values["public_key"] = pub.read_text()
            return values
    raise _missing(
        "ssh", f"{home / '.ssh'}/id_ed25519, id_ecdsa, id_rsa", "Make one with ssh-keygen"
    )


def _ssh_files(v: dict[str, str]) -> dict[str, str]:
    files = {f"ssh/{v['key_name']}": v["private_key"]}
    if v.get("public_key"):
        files[f"ssh/{v['key_name']}.pub"] = v["public_key"]
    return files


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("aws", _aws_read, _aws_files, _aws_vars),
        Provider(
            "gcp", _gcp_read, lambda v: {"gcp/credentials.json": v["credentials_json"]}, _gcp_vars
        ),
        Provider("azure", _azure_read, lambda v: {}, dict),
        Provider(
            "huggingface",
            _hf_read,
            lambda v: {"huggingface/token": v["token"]},
            lambda v: {"HF_TOKEN": v["token"], "HF_TOKEN_PATH": f"{DIR}/huggingface/token"},
        ),
        Provider(
            "github",
            _gh_read,
            lambda v: {"gh/hosts.yml": f"github.com:\n    oauth_token: {v['token']}\n"},
            lambda v: {
                "GH_TOKEN": v["token"],
                "GITHUB_TOKEN": v["token"],
                "GH_CONFIG_DIR": f"{DIR}/gh",
            },
        ),
        Provider(
            "lambda",
            _lambda_read,
            lambda v: {"lambda_cloud/lambda_keys": f"api_key = {v['api_key']}\n"},
            lambda v: {"LAMBDA_API_KEY": v["api_key"]},
        ),
        Provider(
            "ssh",
            _ssh_read,
            _ssh_files,
            lambda v: {
                "GIT_SSH_COMMAND": f"ssh -i {DIR}/ssh/{v['key_name']} -o IdentitiesOnly=yes"
            },
        ),
    )
}


# -- the resource ----------------------------------------------------------------------------------


class Secret(Resource):
    """Named secret values (see the module docstring). ``provider`` says how they are laid out
    on a worker's host; a custom secret's values become variables named by their keys (or by
    ``env_vars={key: VAR}``), and ``files={key: "relative/path"}`` writes some to files instead,
    with ``<KEY>_FILE`` pointing at each."""

    resource_type = "secret"

    def __init__(
        self,
        name: str,
        values: dict[str, str],
        provider: str | None = None,
        env_vars: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise TypeError("a secret's values are a dict of strings: {'KEY': 'value'}")
        if provider is not None and provider not in PROVIDERS:
            raise SecretError(f"unknown provider {provider!r}: one of {', '.join(PROVIDERS)}")
        self.name = plain_name(name)
        self.provider = provider
        self._values = dict(values)
        self.env_vars = dict(env_vars) if env_vars is not None else None
        self.files = dict(files or {})
        for rel in self.files.values():
            parts = rel.replace("\\", "/").split("/")
            if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
                raise SecretError(
                    f"secret {name!r}: a file path is relative and stays in the secret's "
                    f"directory ('dir/name'), not {rel!r}"
                )
        for key in [*(self.env_vars or {}), *self.files]:
            if key not in self._values:
                raise SecretError(f"secret {name!r} has no value {key!r} to deliver")

    @property
    def values(self) -> dict[str, str]:
        """The values themselves (asked for explicitly; never shown otherwise)."""
        return dict(self._values)

    def delivery(self) -> tuple[dict[str, str], dict[str, str]]:
        """``(variables, files)`` to put on a worker's host: variables may name the secret's
        directory there as ``{secrets_dir}``; files are relative to it."""
        if self.provider is not None:
            p = PROVIDERS[self.provider]
            return p.env_vars(self._values), p.files(self._values)
        names = self.env_vars if self.env_vars is not None else {k: k for k in self._values}
        variables = {var: self._values[key] for key, var in names.items() if key not in self.files}
        files: dict[str, str] = {}
        for key, rel in self.files.items():
            files[rel] = self._values[key]
            variables[f"{key}_FILE"] = f"{DIR}/{rel}"
        return variables, files

    def config(self) -> dict[str, Any]:
        """The saved form — values included: it is what a secret is (saved 0600 here, sealed in
        a registry)."""
        return {
            "type": "secret",
            "name": self.name,
            "provider": self.provider,
            "values": self._values,
            "env_vars": self.env_vars,
            "files": self.files,
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Secret:
        return cls(
            config["name"],
            dict(config.get("values") or {}),
            config.get("provider"),
            config.get("env_vars"),
            config.get("files"),
        )

    @classmethod
    def list(cls) -> list[str]:
        """Names of the saved secrets you may read (the registry's when logged in)."""
        return [row["name"] for row in list_saved("secret")]

    async def ato(self, cluster: Cluster, env: Any = None) -> Secret:
        name = "rhzmq.deliver" if env is None else f"rhzmq.deliver.{getattr(env, 'name', env)}"
        variables, files = self.delivery()
        try:
            await cluster.acall(name, "", variables, files)
        except KeyError:  # ObjectNotFound: first delivery to these workers
            await cluster.aput(name, deliver, env)  # the function, by reference
            await cluster.acall(name, "", variables, files)
        return self

    def to(self, cluster: Cluster, env: Any = None) -> Secret:
        """Deliver to workers already running on ``cluster`` (the default worker, or ``env``'s)
        until they restart; for a lasting delivery put the secret in the env's ``secrets``."""
        return run_sync(self.ato, cluster, env, hint="`await secret.ato(cluster)`")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}=****" for k in self._values)
        kind = f" ({self.provider})" if self.provider else ""
        return f"<Secret {self.name!r}{kind}: {shown}>"

    __str__ = __repr__


def secret(
    name: str,
    values: dict[str, str] | None = None,
    env_vars: dict[str, str] | None = None,
    files: dict[str, str] | None = None,
) -> Secret:
    """A custom secret (``values``), or with only a name the saved secret of that name."""
    if values is None:
        return Secret.load(name)  # type: ignore[no-any-return]
    return Secret(name, values, None, env_vars, files)


def provider_secret(
    provider: str, values: dict[str, str] | None = None, name: str | None = None
) -> Secret:
    """A provider's credentials, read now from where its own tools keep them (or ``values``).
    Providers: aws, gcp, azure, huggingface, github, lambda, ssh."""
    if provider not in PROVIDERS:
        raise SecretError(f"unknown provider {provider!r}: one of {', '.join(PROVIDERS)}")
    found = values if values is not None else PROVIDERS[provider].read(Path.home())
    return Secret(name or provider, found, provider)


def resolve(item: Secret | str | dict[str, str], providers: bool = True) -> Secret:
    """An env's ``secrets`` entry as a Secret: a name is a saved secret, else (with
    ``providers``) a provider's credentials read on this machine."""
    if isinstance(item, Secret):
        return item
    if isinstance(item, dict):
        return Secret("vars", item)
    try:
        return Secret.load(item)  # type: ignore[no-any-return]
    except KeyError:
        if item in PROVIDERS and not providers:
            raise SecretError(
                f"this env was saved by another user and names the {item!r} credentials: they "
                f"would be read from this machine and sent to its workers. Pass them yourself "
                f"(env.secret_refs = [rh.provider_secret({item!r}), ...]) if you mean to"
            ) from None
        if item in PROVIDERS:
            return provider_secret(item)
        raise SecretError(
            f"no saved secret named {item!r}, and it is not a provider "
            f"({', '.join(PROVIDERS)}): save it first (rh.secret(name, values).save())"
        ) from None


def deliver(
    variables: dict[str, str], files: dict[str, str], group: str | None = None
) -> list[str]:
    """Runs in a worker: write ``files`` (0600) under this env's secrets directory and set
    ``variables`` in this process. Returns the files' paths (never their content)."""
    root = secrets_dir(group or os.environ.get("RHZMQ_ENV") or "default")
    written = write_files(root, files)
    os.environ.update(fill(variables, root))
    return written
