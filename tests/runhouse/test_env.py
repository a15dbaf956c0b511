"""Runhouse's tests/test_resources/test_envs/test_env.py (a8d4a40 = 0.0.35) and its conftest
(286f238), ported: ``import rhzmq as rh`` and the ``cluster`` fixture; bodies and assertions as
written unless noted.

Ported: cases 7 (``env.to(cluster, force_install=True)`` then ``pip freeze`` in the env), 8
(``env.reqs`` set, then a function in that env), 9 (``env.env_vars`` dict, and the sibling
``test_env_vars_file``, rebuilt from the case's description: a dotenv file with ``KEY=val`` lines
and ``# comments``), 10 (``cluster.run(cmd, env=env)``: env vars, compound shell commands).

Changed:
* The ``env`` fixture's ``reqs=["npm"]`` is ``reqs=["pytest"]``: rhzmq's envs install their reqs
  with pip into a venv layered over the daemon's packages, so a package the test venv already has
  installs without a download (the ``npm`` PyPI package would be fetched).
* ``_uninstall_env(env, cluster)`` is not called: it runs ``pip uninstall <req> -y`` in the env's
  shell, where ``pip`` is whatever pip is on PATH (rhzmq's venvs have none), which would uninstall
  pytest from the machine's own Python.

Left out: tests of conda envs, ``Package``/``working_dir`` syncing, secrets (``secrets=["aws"]``),
GPU and docker-specific env tests (not quoted: out of scope).
"""

import pytest
from rh_helpers import _get_env_var_value, env_np_summer

import rhzmq as rh

np_summer = env_np_summer  # test_env.py's np_summer


@pytest.fixture(params=["unnamed_env", "named_env"])
def env(request):
    if request.param == "unnamed_env":
        return rh.env(reqs=["pytest"])  # Runhouse: reqs=["npm"]
    return rh.env(reqs=["pytest"], name="named_env")  # Runhouse: reqs=["npm"]


def test_env_to_cluster(env, cluster):
    env.to(cluster, force_install=True)

    for req in env.reqs:
        if not req == "./":
            res = cluster.run([f"pip freeze | grep {req}"], env=env)
            assert res[0][0] == 0  # installed properly

    # _uninstall_env(env, cluster): not run here (see the module docstring)


def test_fn_to_env(env, cluster):
    package = "numpy"
    env.reqs = env.reqs + [package] or [package]  # noqa: RUF005 - as in Runhouse
    fn = rh.function(np_summer).to(system=cluster, env=env, force_install=True)
    assert fn(1, 4) == 5


def test_env_vars_dict(env, cluster):
    test_env_var = "TEST_ENV_VAR"
    test_value = "value"
    env.env_vars = {test_env_var: test_value}

    get_env_var_cpu = rh.function(_get_env_var_value).to(
        system=cluster, env=env, force_install=True
    )
    res = get_env_var_cpu(test_env_var)

    assert res == test_value

    # _uninstall_env(env, cluster): not run here (see the module docstring)


def test_env_vars_file(env, cluster, tmp_path):
    # Rebuilt from the case's description of the sibling test (dotenv file, KEY=val, # comments)
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\n\nENV_VAR1=value\n# comment with =\nENV_VAR2 =val2\n")
    env.env_vars = str(env_file)

    get_env_var_cpu = rh.function(_get_env_var_value).to(
        system=cluster, env=env, force_install=True
    )
    assert get_env_var_cpu("ENV_VAR1") == "value"
    assert get_env_var_cpu("ENV_VAR2") == "val2"


def test_env_run_cmd(env, cluster):
    test_env_var = "ENV_VAR"
    test_value = "env_val"
    env.env_vars = {test_env_var: test_value}

    env.to(cluster)
    res = cluster.run(["echo $ENV_VAR"], env=env)

    assert res[0][0] == 0  # returncode
    assert "env_val" in res[0][1]  # stdout


@pytest.mark.parametrize(
    "cmd",
    ["export ENV_VAR=env_val", "pip install numpy; echo $ENV_VAR", "pip freeze | grep numpy"],
)
def test_env_run_shell_cmds(env, cluster, cmd):
    env.to(cluster)

    res = cluster.run([cmd], env=env)
    assert res[0][0] == 0
