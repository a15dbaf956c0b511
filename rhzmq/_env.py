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
from typing import TYPE_CHECKING, Any

from ._portal import run_sync
from ._store import Resource
from .wire.protocol import name_problem

if TYPE_CHECKING:
    from .clusters import Cluster


class Env(Resource):
    """A worker environment; see the module docstring.

    ``secrets`` are environment variables like ``env_vars`` that rhzmq never displays or logs
    (nor saves: a saved env's config lists their names only, and loading it takes their values
    from the loading process's environment variables of the same names). ``compute={"node": i}`` places the
    env's workers on host ``i`` (an index or an address) of an SSH cluster.
    """

    resource_type = "env"

    def __init__(
        self,
        name: str | None = None,
        reqs: list[str] | None = None,
        env_vars: dict[str, str] | None = None,
        working_dir: str | None = None,
        setup_cmds: list[str] | None = None,
        compute: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> None:
        if name is not None:
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
        self.name = name or "env-" + _short_hash(reqs, env_vars, working_dir, setup_cmds)
        self.reqs = list(reqs or [])
        self.env_vars = dict(env_vars or {})
        # Set in the workers like env_vars, but never shown: not in repr, status(), processes()
        # or any log, and not part of the env's default name.
        self.secrets = dict(secrets or {})
        self.working_dir = working_dir
        self.setup_cmds = list(setup_cmds or [])
        self.compute = dict(compute or {})
        self._secret_names: list[str] = []  # of a loaded config (see the class docstring)

    def spec(self, replicas: int = 1) -> dict[str, Any]:
        return {
            "name": self.name,
            "reqs": self.reqs,
            "env_vars": self.env_vars,
            "secrets": self.secrets,
            "working_dir": self.working_dir,
            "setup_cmds": self.setup_cmds,
            "compute": self.compute,
            "replicas": replicas,
        }

    def config(self) -> dict[str, Any]:
        return {
            "type": "env",
            "name": self.name,
            "reqs": self.reqs,
            "env_vars": self.env_vars,
            "secret_names": sorted({*self.secrets, *self._secret_names}),
            "working_dir": self.working_dir,
            "setup_cmds": self.setup_cmds,
            "compute": self.compute,
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
            secrets={n: os.environ[n] for n in names if n in os.environ},
        )
        env._secret_names = names
        return env

    async def ato(self, cluster: Cluster, *, replicas: int = 1) -> list[str]:
        """Make sure the env's workers run on ``cluster``; returns their worker names."""
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        return await cluster.aspawn(self.spec(replicas))

    def to(self, cluster: Cluster, *, replicas: int = 1) -> Env:
        """Make sure the env's workers run on ``cluster`` (installing its reqs if needed)."""
        run_sync(self.ato, cluster, replicas=replicas, hint="`await env.ato(cluster)`")
        return self

    def __repr__(self) -> str:
        return f"<Env {self.name!r} reqs={self.reqs}>"


#: ``rh.env(name="math", reqs=["numpy"])``: the factory is the class itself, so its signature
#: and docs cannot drift from it.
env = Env


def _short_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]
