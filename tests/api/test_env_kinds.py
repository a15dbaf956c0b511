"""Kinds of environment (issue 14, item 5): a cluster's default env (``rh.cluster(...,
default_env=rh.env(...))``), applied to the daemon and every worker before anything runs; and
conda environments (``rh.env(conda=...)``). Each scenario gets its own daemon in its own
RHZMQ_HOME (and PATH), run by a child process and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import remote_objects as ro
from helpers import wait_pid_gone

import rhzmq as rh

DEFAULT_ENV_SCRIPT = """
import json, os, sys
import rhzmq as rh
import remote_objects as ro

base = rh.env(
    name="base",
    reqs=["inflection==0.5.1"],
    env_vars={"BASE_VAR": "from the default env"},
    setup_cmds=["echo setup ran > $RHZMQ_HOME/setup.txt"],
)
c = rh.cluster("local", gateway_port=None, default_env=base).up_if_not()
out = {"pid": json.load(open(os.path.join(os.environ["RHZMQ_HOME"], "local", "daemon.json")))["pid"]}
# The default worker: the env's variables and its requirements (not in the daemon's Python).
camelize = rh.function(ro.camelize).to(c)
out["default_camel"] = camelize("device_type")
out["default_var"] = rh.function(ro.getenv).to(c)("BASE_VAR")
# Another env: the default env's variables, and its requirements under the env's own.
other = rh.env(name="other", env_vars={"OWN": "1"})
out["other_camel"] = rh.function(ro.camelize).to(c, env=other, name="camel_other")("a_b")
out["other_var"] = rh.function(ro.getenv).to(c, env=other, name="getenv_other")("BASE_VAR")
out["default_env_name"] = c.default_env.name
out["keys_in_default"] = c.keys(env=c.default_env.name)
# Asking for another default env from a running cluster is an error, not a silent mismatch.
try:
    rh.cluster("local", gateway_port=None, default_env=rh.env(env_vars={"X": "y"})).up_if_not()
except rh.ClusterError as exc:
    out["mismatch"] = str(exc)
# A saved cluster keeps its default env.
c.save("with_base")
out["saved_reqs"] = rh.cluster("with_base").default_env.reqs
print("RESULT " + json.dumps(out))
"""


def _run_scenario(
    script: str, tmp_path: Path, **env_extra: str
) -> tuple[dict[str, object], str, Path]:
    """Run ``script`` against a daemon of its own; returns its RESULT, its stderr, its home."""
    home = tmp_path / "home"
    # Neither cwd nor PYTHONPATH is tests/: its broker/ folder would shadow the broker package
    # in the daemon. The script finds remote_objects through sys.path, the workers by its path.
    env = {**os.environ, "RHZMQ_HOME": str(home), **env_extra}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
            + textwrap.dedent(script),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    state = home / "local" / "daemon.json"
    pid = json.loads(state.read_text())["pid"] if state.exists() else None
    try:
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.split("RESULT ", 1)[1])
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            assert wait_pid_gone(pid)
    return out, done.stderr, home


def test_default_env_applies_to_every_worker(tmp_path: Path) -> None:
    out, stderr, home = _run_scenario(DEFAULT_ENV_SCRIPT, tmp_path)
    assert out["default_camel"] == "DeviceType" and out["other_camel"] == "AB"
    assert out["default_var"] == out["other_var"] == "from the default env"
    assert (home / "setup.txt").read_text() == "setup ran\n"
    # Installing the default env streamed to the starter, before the cluster said it was up.
    assert "(default env)" in stderr
    assert stderr.index("(default env)") < stderr.index("local cluster up")
    assert out["default_env_name"] == "default" and "camelize" in out["keys_in_default"]
    assert "already running with another default env" in out["mismatch"]
    assert out["saved_reqs"] == ["inflection==0.5.1"]
    # The spec file (env vars, maybe secrets) was read once by the daemon and removed.
    assert not (home / "local" / "default_env.json").exists()


CONDA_SCRIPT = """
import json, os
import rhzmq as rh
import remote_objects as ro

c = rh.cluster("local", gateway_port=None).up_if_not()
out = {}
spec = {"name": "ds", "dependencies": ["python=3.11"]}
fn = rh.function(ro.interpreter).to(c, env=rh.env(name="conda_env", conda=spec))
out["python"] = fn()
# The same environment file again: created once, reused.
again = rh.function(ro.interpreter).to(c, env=rh.env(name="conda_env2", conda=spec), name="again")
out["again"] = again()
# An existing environment, by name.
named = rh.function(ro.interpreter).to(c, env=rh.env(name="conda_named", conda="existing"), name="named")
out["named"] = named()
try:
    rh.function(ro.interpreter).to(c, env=rh.env(name="conda_missing", conda="nope"), name="missing")
except rh.EnvError as exc:
    out["missing"] = str(exc)
print("RESULT " + json.dumps(out))
"""

#: A stand-in for micromamba (a third-party binary that is not installable here): it logs its
#: arguments and makes the environment a venv of this Python, which is what rhzmq then checks,
#: layers and runs workers in.
FAKE_MICROMAMBA = """#!/bin/sh
echo "$@" >> "$FAKE_CONDA_LOG"
case "$1" in
  create) {python} -m venv --without-pip "$4" && echo "created $4" ;;
  env) echo '{{"envs": ["/opt/conda", "'"$FAKE_CONDA_NAMED"'"]}}' ;;
esac
"""


def test_conda_envs_are_created_once_and_layered(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "micromamba"
    tool.write_text(FAKE_MICROMAMBA.format(python=sys.executable))
    tool.chmod(0o755)
    named = tmp_path / "envs" / "existing"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(named)], check=True)
    log = tmp_path / "conda.log"
    out, _, home = _run_scenario(
        CONDA_SCRIPT,
        tmp_path,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_CONDA_LOG=str(log),
        FAKE_CONDA_NAMED=str(named),
    )
    created = [line for line in log.read_text().splitlines() if line.startswith("create")]
    assert len(created) == 1  # the second env with the same file reused it
    prefix = created[0].split()[3]
    assert created[0].startswith("create -y -p") and Path(prefix).parent == home / "envs"
    assert out["python"] == out["again"] == f"{prefix}/bin/python"
    assert out["named"] == f"{named}/bin/python"
    assert "no conda environment named 'nope'" in out["missing"] and "existing" in out["missing"]


def test_conda_without_a_conda_tool_says_what_to_do(cluster: rh.Cluster) -> None:
    with pytest.raises(rh.EnvError, match="none of micromamba, mamba, conda is on this host"):
        rh.function(ro.interpreter).to(cluster, env=rh.env(name="no_conda", conda="base"))
    with pytest.raises(TypeError, match="conda= takes"):
        rh.env(conda=3)  # type: ignore[arg-type]
