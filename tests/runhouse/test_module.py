"""Runhouse's tests/test_resources/test_modules/test_module.py (415a10d), ported: ``import rhzmq
as rh`` and the ``cluster`` fixture; bodies and assertions as written unless noted.

Ported: cases 16 (``cluster.call`` on ``__iter__`` of a stored list; its first half is left
out, see below), 18-20 (``test_module_from_factory``), 21 (``test_module_from_subclass``), 22
(``..._async``), 23 (rename), 24 (``.remote``/``.local``), 25 (``fetch``/``fetch_async``), 26
(``get_or_to`` on a class module), 27 (``set_async``), 28 (``run_async`` permutations), 29
(methods returning coroutines), 34 (a module constructed on the cluster, in a named env), 36 (a
remote import error re-raised as ``ModuleNotFoundError``).

Changed:
* case 16: the stored ``Package.from_string("numpy")`` and the ``cluster.call("numpy_pkg",
  "config")`` half are left out (``rh.Package`` is out of scope); the ``__iter__`` half iterates
  a stored list of the keys of a plain dict standing in for the package's config.
* case 21: the trimmed middle (the ``slow_iter()`` loop under ``capture_stdout`` and the
  ``home``/``local_home``/``size_minus_cpus`` checks) is filled in as in cases 18-19; the
  ``df.loc[2, 2] == 2`` assertion relies on it.
* case 29: different by design (docs/runhouse.md, B6): a coroutine a method returns is awaited by
  the worker, so the caller gets its value, not Runhouse's awaitable ``FutureModule`` stub.
  Runhouse's assertions ``future_module.__class__.__name__ == "FutureModule"`` and ``await
  future_module == 5`` become ``== 5`` on what the call gives.
* case 34: the envs' ``reqs=["pandas", "numpy"]`` are ``["pytest", "numpy"]`` (pip would
  download them into the env's venv otherwise). Different by design: a class module is the
  class, so ``construct_and_get_env()`` (an instance method) is called on an instance,
  ``remote_module()``; called on the class it is a TypeError saying so.
* case 36: ``exception_module`` imports plotly only in a worker (client and local cluster share
  one Python here); see that file.

Left out: module tests needing GPUs, Den (``share``, ``@/`` registry loads), docker, or
``rh.Package`` (not quoted).

The blocking calls of the async tests warn once in a running loop (docs/runhouse.md, "Calling from
async code"); the project turns warnings into errors, Runhouse's code does not expect one: it is
ignored here.
"""

import inspect
import os

import numpy as np
import pytest
from rh_helpers import (
    Calculator,
    ConstructorModule,
    LotsOfAsync,
    ModuleConstructingOtherModule,
    SlowNumpyArray,
    SlowPandas,
    capture_stdout,
    pd,
)

import rhzmq as rh

pytestmark = pytest.mark.filterwarnings(
    "ignore:a blocking rhzmq call inside a running event loop:RuntimeWarning"
)


def test_call_module_method(cluster):
    # [left out: cluster.put("numpy_pkg", Package.from_string("numpy")) and the "config" call]
    numpy_config = {"name": "numpy", "install_method": "pip", "install_target": "numpy"}

    # Test iterator
    cluster.put("config_dict", list(numpy_config.keys()))
    res = cluster.call("config_dict", "__iter__", stream_logs=True)
    # Checks that all the keys in numpy_config were returned
    inspect.isgenerator(res)
    for key in res:
        assert key
        numpy_config.pop(key)
    assert not numpy_config


def test_module_from_factory(cluster):
    size = 3
    RemoteClass = rh.module(SlowNumpyArray).to(cluster)
    remote_instance = RemoteClass(size=size, name="remote_instance1")

    # Test that naming works properly, and "class" module was unaffacted
    assert remote_instance.name == "remote_instance1"
    assert RemoteClass.name == "SlowNumpyArray"

    # Test that module was initialized correctly on the cluster
    assert remote_instance.system == cluster
    assert remote_instance.remote.size == size
    assert all(remote_instance.remote.arr == np.zeros(size))
    assert remote_instance.remote._hidden_1 == "hidden"

    results = []
    out = ""
    with capture_stdout() as stdout:
        for val in remote_instance.slow_iter():
            assert val
            print(val)
            results += [val]
            out = out + str(stdout)
    assert len(results) == 3

    # Check that stdout was captured. Skip the last result because sometimes we
    # don't catch it and it makes the test flaky.
    for i in range(size - 1):
        assert f"Hello from the cluster stdout! {i}" in out
        assert f"Hello from the cluster logs! {i}" in out

    local_home = os.path.expanduser("~")
    if cluster.on_this_cluster():
        remote_home = local_home
    else:
        remote_home = cluster.run(["echo $HOME"])[0][1].strip()

    # Test classmethod on remote class
    assert RemoteClass.local_home() == local_home
    assert RemoteClass.home() == remote_home

    # Test classmethod on remote instance
    assert remote_instance.local_home() == local_home
    assert remote_instance.home() == remote_home

    # Test instance method
    assert remote_instance.size_minus_cpus() == size - remote_instance.cpu_count()

    # Test remote getter
    arr = remote_instance.remote.arr
    assert isinstance(arr, np.ndarray)
    assert arr.shape == (size,)
    assert arr[0] == 0
    assert arr[2] == 2

    # Test remote setter
    remote_instance.remote.size = 20
    assert remote_instance.remote.size == 20

    # Test creating a second instance of the same class
    remote_instance2 = RemoteClass(size=30, name="remote_instance2")
    assert remote_instance2.system == cluster
    assert remote_instance2.remote.size == 30

    # TODO fix factory method support
    # Test creating a third instance with the factory method
    remote_instance3 = RemoteClass.factory_constructor.remote(size=40, run_name="remote_instance3")

    remote_instance_config = remote_instance3.system.config()
    cluster_config = cluster.config()

    assert remote_instance_config == cluster_config
    assert remote_instance3.remote.size == 40
    assert remote_instance3.home() == remote_home

    # Make sure first array and class are unaffected by this change
    assert remote_instance.remote.size == 20
    assert RemoteClass.home() == remote_home


@pytest.mark.parametrize("env", [None])
def test_module_from_subclass(cluster, env):
    size = 3
    remote_instance = SlowPandas(size=size).to(cluster, env)
    assert remote_instance.system == cluster

    # Test that module was initialized correctly on the cluster
    assert remote_instance.remote.size == size
    assert len(remote_instance.remote.df) == size
    assert remote_instance.remote._hidden_1 == "hidden"

    # [trimmed in the case; filled in as in test_module_from_factory]
    results = []
    out = ""
    with capture_stdout() as stdout:
        for val in remote_instance.slow_iter():
            assert val
            print(val)
            results += [val]
            out = out + str(stdout)
    assert len(results) == 3

    for i in range(size - 1):
        assert f"Hello from the cluster stdout! {i}" in out
        assert f"Hello from the cluster logs! {i}" in out

    local_home = os.path.expanduser("~")
    if cluster.on_this_cluster():
        remote_home = local_home
    else:
        remote_home = cluster.run(["echo $HOME"])[0][1].strip()

    assert remote_instance.local_home() == local_home
    assert remote_instance.home() == remote_home
    assert remote_instance.size_minus_cpus() == size - remote_instance.cpu_count()
    # [end of the filled-in part]

    df = remote_instance.remote.df
    assert isinstance(df, pd.DataFrame)
    assert df.shape == (3, 3)
    assert df.loc[0, 0] == 0
    assert df.loc[2, 2] == 2

    remote_instance.remote.size = 20
    assert remote_instance.remote.size == 20

    del remote_instance

    # Test get_or_to
    remote_instance = SlowPandas(size=3).get_or_to(cluster, env=env, name="SlowPandas")
    assert remote_instance.system.config() == cluster.config()
    # Check that size is unchanged from when we set it to 20 above
    assert remote_instance.remote.size == 20


@pytest.mark.parametrize("env", [None])
@pytest.mark.anyio
async def test_module_from_subclass_async(cluster, env):
    remote_df = SlowPandas(size=3).to(cluster, env)
    assert remote_df.system == cluster
    results = []
    # Capture stdout to check that it's working
    out = ""
    with capture_stdout() as stdout:
        async for val in remote_df.slow_iter_async():
            assert val
            print(val)
            results += [val]
            out = out + str(stdout)
    assert len(results) == 3

    if cluster.on_this_cluster():
        cpu_count = os.cpu_count()
    else:
        cpu_count = int(cluster.run_python(["import os; print(os.cpu_count())"])[0][1])
    assert await remote_df.cpu_count_async() == cpu_count

    # Properties
    df = await remote_df.fetch_async("df")
    assert isinstance(df, pd.DataFrame)
    assert df.shape == (3, 3)
    assert df.loc[0, 0] == 0
    assert df.loc[2, 2] == 2

    await remote_df.set_async("size", 20)
    assert remote_df.remote.size == 20


def test_create_and_rename(cluster):
    RemoteCalc = rh.module(cls=Calculator).to(cluster)
    remote_calc = RemoteCalc(owner="Runhouse", name="Runhouse_calc")
    assert isinstance(RemoteCalc, rh.Module)
    assert RemoteCalc.name == "Calculator"
    assert remote_calc.name == "Runhouse_calc"
    assert remote_calc.summer(2, 3) == 5
    assert remote_calc.mult(3, 7) == 21

    # test that after rename, module stays the same, apart from the name.
    # Moreover, tests that the rename did not affect the existing remote instances, as well as creating new ones.
    RemoteCalc.rename("my_calc_module")
    assert RemoteCalc.name == "my_calc_module"
    remote_calc_renamed = RemoteCalc(owner="Runhouse", name="Runhouse_calc_new")
    assert remote_calc_renamed.summer(4, 6) == 10
    assert remote_calc_renamed.divider(35, 7) == 5
    assert remote_calc.summer(4, 6) == remote_calc_renamed.summer(4, 6)
    assert remote_calc.divider(35, 7) == remote_calc_renamed.divider(35, 7)


def test_local_remote_properties(cluster):
    RemoteCalc = rh.module(cls=Calculator).to(cluster)
    remote_calc = RemoteCalc(owner="Runhouse", name="Runhouse_calc")
    assert RemoteCalc.name == "Calculator"
    assert remote_calc.name == "Runhouse_calc"
    assert remote_calc.remote.model == "Casio"
    assert remote_calc.remote._release_year == 2023
    assert remote_calc.local.importer == "Calculators Inc"


@pytest.mark.parametrize("env", [None])
@pytest.mark.anyio
async def test_fetch_class_and_properties(cluster, env):
    RemoteCalc = rh.module(cls=Calculator).to(cluster)
    owner = "Runhouse"

    # fetch of a general class (not subclass)
    remote_calc = RemoteCalc(owner=owner)
    model = remote_calc.fetch("model")
    release_year = remote_calc.fetch("_release_year")
    remote_owner = remote_calc.fetch("owner")
    model_async = await remote_calc.fetch_async("model")
    release_year_async = await remote_calc.fetch_async("_release_year")
    owner_async = await remote_calc.fetch_async("owner")
    assert model == "Casio"
    assert model_async == "Casio"
    assert release_year == 2023
    assert release_year == release_year_async
    assert remote_owner == owner_async

    remote_df_sync = SlowPandas(size=4).to(cluster, env)
    assert remote_df_sync.size == 4
    if cluster.on_this_cluster():
        cpu_count = os.cpu_count()
    else:
        cpu_count = int(cluster.run_python(["import os; print(os.cpu_count())"])[0][1])
    assert remote_df_sync.cpu_count() == cpu_count

    assert await SlowPandas(size=4).to(system=cluster, env=env).fetch_async("size") == 4


def test_get_or_to(cluster):
    RemoteCalcNew = rh.module(Calculator).get_or_to(cluster, name="new_remote_cals")
    remote_calc_new = RemoteCalcNew(owner="Runhouse_admin", name="Admin_calc")
    assert remote_calc_new.mult(5, 9) == 45
    assert remote_calc_new.remote.owner == "Runhouse_admin"
    assert remote_calc_new.name == "Admin_calc"
    RemoteCalcExisting = rh.module(Calculator).get_or_to(cluster, name="new_remote_cals")
    remote_calc_existing = RemoteCalcExisting(owner="Runhouse_users", name="Users_calc")
    assert remote_calc_existing.mult(6, 2) == 12
    assert remote_calc_existing.remote.owner == "Runhouse_users"
    assert remote_calc_existing.remote.name == "Users_calc"


@pytest.mark.parametrize("env", [None])
@pytest.mark.anyio
async def test_set_async(cluster, env):
    RemoteCalc = rh.module(Calculator).to(cluster)
    my_remote_calc = RemoteCalc(owner="Runhouse", name="Runhouse_remote_dev")

    # test before changing the properties values.
    assert my_remote_calc.remote.owner == "Runhouse"
    assert my_remote_calc.remote.name == "Runhouse_remote_dev"
    assert my_remote_calc.remote.model == "Casio"
    assert my_remote_calc.remote._release_year == 2023

    # test after changing the properties values.
    await my_remote_calc.set_async("owner", "Runhouse_eng")
    assert my_remote_calc.remote.owner == "Runhouse_eng"
    await my_remote_calc.set_async("_release_year", 2020)
    assert my_remote_calc.remote._release_year == 2020

    # test that the unchanged properties remained the same.
    assert my_remote_calc.remote.model == "Casio"
    assert my_remote_calc.remote.name == "Runhouse_remote_dev"


@pytest.mark.anyio
async def test_run_async_permutations(cluster):
    lots_of_async_remote = rh.module(LotsOfAsync).to(cluster)
    calculator_remote = rh.module(Calculator).to(cluster)

    lots_of_async_remote_instance = lots_of_async_remote()
    calculator_remote_instance = calculator_remote()

    # Test things work natively
    assert await lots_of_async_remote_instance.asum(2, 3) == 5
    assert calculator_remote_instance.summer(2, 3) == 5

    # Test that can call with run_async set
    assert await lots_of_async_remote_instance.asum(2, 3, run_async=True) == 5
    assert lots_of_async_remote_instance.asum(2, 3, run_async=False) == 5
    assert await calculator_remote_instance.summer(2, 3, run_async=True) == 5
    assert calculator_remote_instance.summer(2, 3, run_async=False) == 5


@pytest.mark.anyio
async def test_returns_coroutine(cluster):
    # Different by design (B6): the worker awaits a returned coroutine; see the module docstring.
    lots_of_async_remote = rh.module(LotsOfAsync).to(cluster)
    lots_of_async_remote_instance = lots_of_async_remote()

    # Test that can call with run_async set
    future_module = lots_of_async_remote_instance.returns_coroutine(2, 3)
    assert future_module == 5  # Runhouse: a FutureModule, and `await future_module == 5`

    # Test that can call with run_async set to True
    future_module = await lots_of_async_remote_instance.returns_coroutine(2, 3, run_async=True)
    assert future_module == 5

    future_module = await lots_of_async_remote_instance.async_returns_coroutine(2, 3)
    assert future_module == 5

    # Test that can call with run_async set to False
    future_module = lots_of_async_remote_instance.async_returns_coroutine(2, 3, run_async=False)
    assert future_module == 5


def test_construct_module_on_cluster(cluster):
    env = rh.env(
        name="test_env",
        reqs=["pytest", "numpy"],  # Runhouse: ["pandas", "numpy"]
    )
    remote_constructor_module = rh.module(ConstructorModule)().to(cluster, env=env)
    remote_constructor_module.construct_module_on_cluster()


def test_module_constructed_on_cluster_is_in_same_env(cluster):
    env = rh.env(name="special_env", reqs=["pytest", "numpy"])  # Runhouse: ["pandas", "numpy"]
    remote_module = rh.module(ModuleConstructingOtherModule).to(system=cluster, env=env)
    # rhzmq: the class module is the class; its instance methods need an instance (docs/runhouse.md).
    with pytest.raises(TypeError, match="make an instance"):
        remote_module.construct_and_get_env()
    assert remote_module().construct_and_get_env().name == env.name


def test_dependency_exception(cluster):
    from exception_module import ExceptionModule  # Runhouse: from .exception_module import ...

    with pytest.raises(ModuleNotFoundError) as err:
        exc_module = ExceptionModule()
        exc_module.to(cluster)
    assert "plotly" in str(err.value)
