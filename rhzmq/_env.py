"""Environments: the Python a worker process runs, described in code.

``rh.env(name="math", reqs=["numpy"], env_vars={...})`` names a set of worker processes. Its
``reqs`` are installed once per machine into a virtual environment cached by their hash and
layered over the daemon's own packages; installing streams pip's output to the caller.
``.to(cluster)`` (or ``fn.to(cluster, env=e)``) makes sure its workers run; objects sent with
``env=`` live there; ``cluster.delete("math")`` stops them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._portal import run_sync
from ._store import Resource, plain_name, short_name
from .wire.protocol import name_problem

if TYPE_CHECKING:
    from .clusters import Cluster


class Env(Resource):
    """A worker environment; see the module docstring.

    ``secrets`` are a dict of variables like ``env_vars`` that rhzmq never displays or logs (nor
    saves: a saved env's config lists their names only, and loading it takes their values from
    the loading process's environment variables of the same names), or a list of secrets:
    :class:`~rhzmq.Secret` objects, names (a saved secret, else a provider's:
    ``secrets=["aws", "huggingface"]``) or dicts, each delivered with its files
    (:mod:`rhzmq._secrets`); names are resolved when the env is sent, and saved as names. ``compute={"node": i}`` places the
    env's workers on host ``i`` (an index or an address) of an SSH cluster.
    """

    resource_type = "env"

    def __init__(
        self,
        name: str | None = None,
        reqs: list[str] | None = None,
        env_vars: dict[str, str] | str | None = None,
        working_dir: str | None = None,
        setup_cmds: list[str] | None = None,
        compute: dict[str, Any] | None = None,
        secrets: dict[str, str] | list[Any] | None = None,
        conda: str | dict[str, Any] | None = None,
    ) -> None:
        if name is not None:
            name = plain_name(name)
            problem = name_problem(name, "env name")
            if problem:
                raise ValueError(problem)
            if name == "default" and (reqs or env_vars):
                raise ValueError(
                    "env name 'default' is the daemon's own worker and cannot take requirements"
                )
        if reqs is not None and (
            isinstance(reqs, str) or not all(isinstance(r, str) for r in reqs)
        ):
            raise TypeError(
                f"reqs must be a list of requirement strings like ['numpy>=2'], got {reqs!r}"
            )
        self.env_vars = env_vars or {}  # a dict, or a .env file the setter reads
        self.name = name or "env-" + _short_hash(
            reqs, self.env_vars, working_dir, setup_cmds, conda
        )
        self.reqs = list(reqs or [])
        # Set in the workers like env_vars, but never shown: not in repr, status(), processes()
        # or any log, and not part of the env's default name.
        self.secrets: dict[str, str] = {}
        self.secret_refs: list[Any] = []  # Secret objects, secret or provider names, dicts
        if isinstance(secrets, dict):
            self.secrets = dict(secrets)
        elif secrets is not None:
            if isinstance(secrets, str) or not isinstance(secrets, list | tuple):
                raise TypeError(
                    "secrets= takes a dict of variables or a list of secrets (rh.secret(...), "
                    f"provider or secret names like 'aws', dicts), not {secrets!r}"
                )
            self.secret_refs = list(secrets)
        self.working_dir = working_dir
        self.setup_cmds = list(setup_cmds or [])
        unknown = sorted(set(compute or {}) - {"node"})
        if unknown:
            # Silently ignoring {"GPU": 1} would run GPU code on whatever host it landed on.
            raise ValueError(
                f"env compute= does not know {', '.join(map(repr, unknown))}: it takes "
                '{"node": <index or address>} (which host of an SSH cluster runs the workers). '
                "Pick machines with the cluster instead (instance types: the on-demand clusters)."
            )
        self.compute = dict(compute or {})
        if conda is not None and not isinstance(conda, str | dict):
            raise TypeError(
                "conda= takes an environment's name, an environment file's path, or the file's "
                f"content as a dict, not {type(conda).__name__}"
            )
        if isinstance(conda, str) and conda.endswith((".yml", ".yaml")):
            try:  # read here, where the file is; the host may not have it
                conda = {"yaml": Path(conda).expanduser().read_text()}
            except OSError as exc:
                raise ValueError(
                    f"conda=: cannot read the environment file {conda!r}: {exc}"
                ) from None
        self.conda = conda
        self._secret_names: list[str] = []  # of a loaded config (see the class docstring)
        self._existing = False  # named by a string: use the env as it runs on the cluster

    @property
    def env_vars(self) -> dict[str, str]:
        """Variables set in the env's workers: a dict, or (when set) a ``.env`` file's path,
        read at once (``KEY=value`` lines, ``#`` comments, optional ``export`` and quotes)."""
        return self._env_vars

    @env_vars.setter
    def env_vars(self, value: dict[str, str] | str | os.PathLike[str]) -> None:
        if isinstance(value, str | os.PathLike):
            value = read_dotenv(value)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise TypeError(
                f"env_vars takes a dict of variables or a .env file's path, not {value!r}"
            )
        self._env_vars = {k: str(v) for k, v in value.items()}

    def spec(self, replicas: int = 1) -> dict[str, Any]:
        return {
            "name": self.name,
            "reqs": self.reqs,
            "env_vars": self.env_vars,
            **self._secret_delivery(),
            "working_dir": self.working_dir,
            "setup_cmds": self.setup_cmds,
            "compute": self.compute,
            "replicas": replicas,
            **({"conda": self.conda} if self.conda is not None else {}),
            **({"existing": True} if self._existing else {}),
        }

    def _secret_delivery(self) -> dict[str, Any]:
        """The spec's ``secrets`` (variables) and ``secret_files`` (see rhzmq._secrets)."""
        from ._secrets import resolve

        variables = dict(self.secrets)
        files: dict[str, str] = {}
        # An env someone else saved names secrets; it must never make this machine's own
        # credentials (a provider's files here) go to workers running their code.
        foreign = self._saved_by_another()
        for ref in self.secret_refs:
            more_vars, more_files = resolve(ref, providers=not foreign).delivery()
            variables.update(more_vars)
            files.update(more_files)
        return {"secrets": variables, **({"secret_files": files} if files else {})}

    def _saved_by_another(self) -> str | None:
        """The owner of the registry copy this env was loaded from, if not the current user."""
        saved = self.__dict__.get("_rh_saved") or {}
        owner = saved.get("owner")
        if saved.get("store") != "registry" or not owner:
            return None
        from ._store import registry

        me = registry().whoami()["name"]
        return None if owner == me else str(owner)

    def config(self) -> dict[str, Any]:
        return {
            "type": "env",
            "name": self.name,
            "reqs": self.reqs,
            "env_vars": self.env_vars,
            "secret_names": sorted({*self.secrets, *self._secret_names}),
            **(
                {"secret_refs": [_ref_name(r) for r in self.secret_refs]}
                if self.secret_refs
                else {}
            ),
            "working_dir": self.working_dir,
            "setup_cmds": self.setup_cmds,
            "compute": self.compute,
            **({"conda": self.conda} if self.conda is not None else {}),
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Env:
        names = list(config.get("secret_names") or [])
        env = cls(
            name=config["name"],
            reqs=config.get("reqs"),
            env_vars=config.get("env_vars"),
            working_dir=config.get("working_dir"),
            setup_cmds=config.get("setup_cmds"),
            compute=config.get("compute"),
            secrets=list(config["secret_refs"])
            if config.get("secret_refs")
            else {n: os.environ[n] for n in names if n in os.environ},
            conda=config.get("conda"),
        )
        env._secret_names = names
        return env

    async def ato(
        self,
        cluster: Cluster | None = None,
        *,
        replicas: int = 1,
        force_install: bool = False,
        system: Cluster | None = None,
    ) -> list[str]:
        """Make sure the env's workers run on ``cluster``; returns their worker names.
        ``force_install`` restarts them even if they run with this definition."""
        cluster = _system(cluster, system)
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        spec = self.spec(replicas)
        if force_install:
            spec["force"] = os.urandom(8).hex()  # a definition never seen: workers restart
        return await cluster.aspawn(spec)

    def to(
        self,
        cluster: Cluster | None = None,
        *,
        replicas: int = 1,
        force_install: bool = False,
        system: Cluster | None = None,
    ) -> Env:
        """Make sure the env's workers run on ``cluster`` (installing its reqs if needed);
        ``system=`` is Runhouse's name for ``cluster``."""
        run_sync(
            self.ato,
            cluster,
            replicas=replicas,
            force_install=force_install,
            system=system,
            hint="`await env.ato(cluster)`",
        )
        return self

    def __repr__(self) -> str:
        return f"<Env {self.name!r} reqs={self.reqs}>"


def env(
    name: str | None = None,
    reqs: list[str] | None = None,
    env_vars: dict[str, str] | str | None = None,
    working_dir: str | None = None,
    setup_cmds: list[str] | None = None,
    compute: dict[str, Any] | None = None,
    secrets: dict[str, str] | list[Any] | None = None,
    conda: str | dict[str, Any] | None = None,
) -> Env:
    """``rh.env(name="math", reqs=["numpy"])``: an :class:`Env` (its arguments are the class's).
    ``rh.env(name="math")`` alone is the env saved under that name, if there is one."""
    described = (reqs, env_vars, working_dir, setup_cmds, compute, secrets, conda)
    if name is not None and all(v is None for v in described):
        try:
            return Env.load(name)  # type: ignore[no-any-return]
        except (KeyError, ValueError):  # not saved (or not a name): Env says what is wrong
            pass
    return Env(short_name(name) if name is not None else None, *described)


#: What ``env=`` accepts wherever it is taken (Runhouse's spellings included).
EnvLike = Env | list[str] | tuple[str, ...] | str | None


def as_env(value: EnvLike) -> Env | None:
    """``env=`` as an :class:`Env`: a list of requirements (``env=["numpy"]``), an env's name
    (its saved config if there is one, else an env of that name without requirements)."""
    if value is None or isinstance(value, Env):
        return value
    if isinstance(value, (list, tuple)):
        return Env(reqs=list(value))
    if isinstance(value, str):
        try:
            return Env.load(value)  # type: ignore[no-any-return]
        except (KeyError, ValueError):
            named = Env(name=short_name(value))
            named._existing = True  # the env of that name as it runs (if it does), unchanged
            return named
    raise TypeError(
        f"env= takes an rh.env(...), a list of requirements or an env's name, not "
        f"{type(value).__name__}"
    )


def _ref_name(ref: Any) -> str:
    """How a secrets entry is saved: by name (a dict of values has none, so cannot be saved)."""
    name = getattr(ref, "name", ref)
    if not isinstance(name, str):
        raise ValueError(
            "an env whose secrets include a dict of values cannot be saved (values are never "
            "written into an env's config): save the values as a secret (rh.secret(name, "
            "values).save()) and list its name"
        )
    return name


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of a ``.env`` file (see :attr:`Env.env_vars`)."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise ValueError(f"env_vars: cannot read the .env file {str(path)!r}: {exc}") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"env_vars: {str(path)!r} line {number} is not KEY=value: {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def _short_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _system(cluster: Cluster | None, system: Cluster | None) -> Cluster:
    """The cluster of a ``.to()``: positional, or Runhouse's ``system=`` (not both)."""
    if cluster is not None and system is not None and cluster is not system:
        raise TypeError(".to() got two clusters: pass it once (cluster or system=)")
    target = cluster if cluster is not None else system
    if target is None:
        raise TypeError(".to() needs a cluster: .to(cluster) (or system=cluster)")
    return target
