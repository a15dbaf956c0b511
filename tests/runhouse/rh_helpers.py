"""The helper functions and classes of Runhouse's tests, docs and examples (v0.0.35/36), shared by
the files of tests/runhouse/ and sent to the cluster by import path, as Runhouse sends them.

Why ``rh_helpers`` and not ``helpers``: tests/conftest.py already imports tests/helpers.py as the
top-level module ``helpers``, and tests/ has no ``__init__.py`` (each directory's modules are
top-level), so a second ``helpers`` could not be imported; making tests/runhouse/ a package
instead would name it ``runhouse`` and shadow the real Runhouse package.

Bodies are as in Runhouse, except ``time.sleep(1)`` shortened to ``time.sleep(0.1)``. Runhouse-only
imports are replaced by local equivalents: ``capture_stdout`` (runhouse.utils), ``get_logger``
(runhouse.logger), ``serialize_data``/``deserialize_data`` (runhouse.servers.http.http_utils) and
``get_random_str`` (tests.utils). Classes quoted only as a description in the cases (the docstring
``Model``/``BERTModel``, the RAG example's ``URLEmbedder``, the HPO example's optimizer) are small
stand-ins, marked as such.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import multiprocessing
import os
import pickle
import random
import string
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

import rhzmq as rh

# -- local equivalents of Runhouse-only imports ---------------------------------------------------


def get_logger(name: str) -> logging.Logger:
    """runhouse.logger.get_logger."""
    return logging.getLogger(name)


class _Captured(io.StringIO):
    def __str__(self) -> str:
        return self.getvalue()


@contextlib.contextmanager
def capture_stdout() -> Iterator[_Captured]:
    """runhouse.utils.capture_stdout: ``str()`` of what it yields is the text so far.

    Captures sys.stdout and sys.stderr (rhzmq writes remote prints to stdout, and remote log
    records to stderr when this process configured no logging) and the root logger (rhzmq
    re-emits remote log records through local logging when the process configured some, as
    pytest does: Runhouse printed them to stdout)."""
    buf = _Captured()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = buf
    root.addHandler(handler)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        sys.stdout, sys.stderr = old_out, old_err


def serialize_data(data: Any, serialization: str | None) -> Any:
    """runhouse.servers.http.http_utils.serialize_data (json, pickle as base64 text)."""
    if serialization is None:
        return data
    if serialization == "json":
        return json.dumps(data)
    if serialization == "pickle":
        return base64.b64encode(pickle.dumps(data)).decode("utf-8")
    raise ValueError(f"Invalid serialization type {serialization}")


def deserialize_data(data: Any, serialization: str | None) -> Any:
    """runhouse.servers.http.http_utils.deserialize_data (json only: rhzmq sends no pickles)."""
    if serialization is None:
        return data
    if serialization == "json":
        return json.loads(data)
    raise ValueError(f"Invalid serialization type {serialization}")


def get_random_str(length: int = 8) -> str:
    """tests.utils.get_random_str."""
    return "".join(random.choices(string.ascii_lowercase, k=length))


logger = get_logger(__name__)


# -- test_function.py (1d0b39c) -------------------------------------------------------------------


def call_function(fn, **kwargs):
    return fn(**kwargs)


def summer(a, b):
    return a + b


async def async_summer(a, b):
    return a + b


def getpid(a=0):
    return os.getpid() + a


def slow_generator(size):
    logger.info("Hello from the cluster logs!")
    print("Hello from the cluster stdout!")
    arr = []
    for i in range(size):
        time.sleep(0.1)
        logger.info(f"Hello from the cluster logs! {i}")
        print(f"Hello from the cluster stdout! {i}")
        arr += [i]
        yield f"Hello from the cluster! {arr}"


async def async_slow_generator(size):
    logger.info("Hello from the cluster logs!")
    print("Hello from the cluster stdout!")
    arr = []
    for i in range(size):
        time.sleep(0.1)
        logger.info(f"Hello from the cluster logs! {i}")
        print(f"Hello from the cluster stdout! {i}")
        arr += [i]
        yield f"Hello from the cluster! {arr}"


def np_summer(a, b):  # test_function.py version
    import numpy as np

    print(f"Summing {a} and {b}")
    return int(np.array([a, b]).sum())


def multiproc_np_sum(inputs):
    print(f"CPUs: {os.cpu_count()}")
    with multiprocessing.get_context("spawn").Pool() as P:
        return P.starmap(np_summer, inputs)


# -- test_obj_store.py (cfaed94) ------------------------------------------------------------------


def do_printing_and_logging(steps=3):
    for i in range(steps):
        # Wait to make sure we're actually streaming
        time.sleep(0.1)
        print(f"Hello from the cluster stdout! {i}")
        logger.info(f"Hello from the cluster logs! {i}")
    return list(range(50))  # test_servers/conftest.py version: `return steps`


class slow_numpy_array:
    def __init__(self, size=5):
        self.size = size
        self.arr = np.zeros(self.size)

    def slow_get_array(self):
        for i in range(self.size):
            time.sleep(0.1)
            logger.info(f"Hello from the cluster logs! {i}")
            self.arr[i] = i
            yield f"Hello from the cluster! {self.arr}"


# -- test_module.py (415a10d) ---------------------------------------------------------------------


class SlowNumpyArray:
    def __init__(self, size=5):
        self.size = size
        self.arr = np.zeros(self.size)
        self._hidden_1 = "hidden"

    def slow_iter(self):
        self._hidden_2 = "hidden"
        if not self._hidden_1 and self._hidden_2:
            raise ValueError("Hidden attributes not set")
        for i in range(self.size):
            time.sleep(0.1)
            print(f"Hello from the cluster stdout! {i}")
            logger.info(f"Hello from the cluster logs! {i}")
            self.arr[i] = i
            yield f"Hello from the cluster! {self.arr}"

    @classmethod
    def local_home(cls, local=True):
        return os.path.expanduser("~")

    @classmethod
    def home(cls):
        return os.path.expanduser("~")

    @classmethod
    def cpu_count(cls):
        return os.cpu_count()

    def size_minus_cpus(self):
        return self.size - self.cpu_count()

    @classmethod
    def factory_constructor(cls, size=5):
        return cls(size=size)


class SlowPandas(rh.Module):
    def __init__(self, size=5):
        super().__init__()
        self.size = size
        self.df = pd.DataFrame(np.zeros((self.size, self.size)))
        self._hidden_1 = "hidden"

    def slow_iter(self):
        self._hidden_2 = "hidden"
        if not self._hidden_1 and self._hidden_2:
            raise ValueError("Hidden attributes not set")
        for i in range(self.size):
            time.sleep(0.1)
            print(f"Hello from the cluster stdout! {i}")
            logger.info(f"Hello from the cluster logs! {i}")
            self.df[i] = i
            yield f"Hello from the cluster! {self.df}"

    async def slow_iter_async(self):
        self._hidden_2 = "hidden"
        if not self._hidden_1 and self._hidden_2:
            raise ValueError("Hidden attributes not set")
        for i in range(self.size):
            time.sleep(0.1)
            print(f"Hello from the cluster stdout! {i}")
            logger.info(f"Hello from the cluster logs! {i}")
            self.df[i] = i
            yield f"Hello from the cluster! {self.df}"

    @classmethod
    def local_home(cls, local=True):
        return os.path.expanduser("~")

    @classmethod
    def home(cls):
        return os.path.expanduser("~")

    @classmethod
    def cpu_count(cls):
        return os.cpu_count()

    def size_minus_cpus(self):
        return self.size - self.cpu_count()

    async def cpu_count_async(self):
        return os.cpu_count()


class Calculator:
    importer = "Calculators Inc"

    def __init__(self, owner=None):
        self.model = "Casio"
        self._release_year = 2023
        self.owner = owner

    async def asummer(self, a: int, b: int):
        return a + b

    def summer(self, a: int, b: int):
        return a + b

    def sub(self, a: int, b: int):
        return a - b

    def divider(self, a: int, b: int):
        if b == 0:
            raise ZeroDivisionError
        return round(a / b)

    def mult(self, a: int, b: int):
        return a * b


class LotsOfAsync:
    async def asum(self, a: int, b: int):
        return a + b

    def returns_coroutine(self, a: int, b: int):
        return self.asum(a, b)

    async def async_returns_coroutine(self, a: int, b: int):
        return self.asum(a, b)


class ConstructorModule:
    def construct_module_on_cluster(self):
        calc_module = rh.module(Calculator)()
        assert calc_module.summer(2, 3) == 5


class ModuleConstructingOtherModule:
    def construct_and_get_env(self):
        remote_calc = rh.module(Calculator)()
        return remote_calc.env


# -- test_env.py (a8d4a40) ------------------------------------------------------------------------


def _get_env_var_value(env_var):
    import os

    return os.environ[env_var]


def _uninstall_env(env, cluster):
    # Never called by the port: the env reqs here are packages the test venv itself uses
    # ("pytest", "numpy" in place of "npm"), and `pip` in a worker's shell is whatever pip is on
    # PATH (an env's venv has none), so this would uninstall them from the machine's Python.
    for req in env.reqs:
        if "/" not in req:
            cluster.run([f"pip uninstall {req} -y"], env=env)


def env_np_summer(a, b):  # test_env.py's np_summer (test_function.py has another one)
    import numpy as np

    return int(np.sum([a, b]))


# -- test_cluster.py (81c84d0) / cluster_tests.py (415a10d) ----------------------------------------


def import_env():
    import pandas  # noqa
    import pytest  # noqa

    return "success"


def is_on_cluster(cluster):
    return cluster.on_this_cluster()


def run_in_no_env(cmd):
    return rh.here.run(cmd)


def run_node_all(cmd):
    # This forces `cluster.run` to use ssh instead of calling an env run
    return rh.here.run(cmd, node="all")


# -- docs/tutorials (api-envs, api-modules, api-clusters, quick-start-local, async) ----------------


def np_sum(a, b):
    import numpy as np

    return np.sum([a, b])


def run_home(name: str):
    return f"Run home {name}!"


def get_pid(a=0):
    import os

    return os.getpid() + int(a)


async def async_test(time_to_sleep: int):
    import asyncio

    await asyncio.sleep(time_to_sleep)
    return time_to_sleep


def synchronous_sleep(time_to_sleep: int):
    import time

    time.sleep(time_to_sleep)
    return time_to_sleep


# -- examples/hpo/hpo_bayes_opt_low_level.py (23227a1) ---------------------------------------------


def train_fn(step, width, height):
    time.sleep(0.1)  # the example sleeps 5 s
    return (0.1 + width * step / 100) ** (-1) + height * 0.1


class StandInOptimizer:
    """Stand-in for bayes_opt's BayesianOptimization (trimmed from the case): suggests points
    from a fixed grid and keeps what is registered."""

    def __init__(self) -> None:
        self.registered: list[tuple[dict[str, float], float]] = []
        self._n = 0

    def suggest(self, utility: Any) -> dict[str, float]:
        self._n += 1
        return {"width": float(self._n % 5), "height": float(self._n % 3)}

    def register(self, params: dict[str, float], target: float) -> None:
        self.registered.append((params, target))


# -- examples/fastapi-embeddings-rag/app/main.py (d977947) -----------------------------------------


class URLEmbedder:
    """Stand-in for the example's URLEmbedder (langchain + sentence_transformers + a GPU): the
    same constructor and ``embed_docs`` call shape, numbers instead of a model."""

    def __init__(self, model_name_or_path: str, device: str = "cpu", **model_kwargs: Any) -> None:
        self.model_name_or_path = model_name_or_path
        self.device = device
        self.model_kwargs = model_kwargs

    def embed_docs(self, paths: list[str], normalize_embeddings: bool = True, **kwargs: Any):
        vectors = [[float(len(p)), float(sum(map(ord, p)) % 97)] for p in paths]
        if normalize_embeddings:
            vectors = [list(np.array(v) / np.linalg.norm(v)) for v in vectors]
        return vectors


# -- runhouse/resources/module.py docstring (c5ebb04) ----------------------------------------------


class Model(rh.Module):
    """The ``rh.module`` docstring's example; its trimmed lazy ``tokenizer``/``model`` properties
    are stand-ins (no transformers here)."""

    def __init__(self, model_id, device="cpu", env=None):
        super().__init__(env=env)
        self.model_id = model_id
        self.device = device

    @property
    def tokenizer(self):
        if not hasattr(self, "_tokenizer"):
            self._tokenizer = {"vocab": ["hello", "world"], "model_id": self.model_id}
        return self._tokenizer

    @property
    def model(self):
        if not hasattr(self, "_model"):
            self._model = {"weights": [0.5, 0.25]}
        return self._model

    def predict(self, x):
        return len(x.split()) * sum(self.model["weights"])

    def train(self, x):
        return f"trained on {x}"

    def forward(self, x):
        return self.predict(x)


class BERTModel:
    """The docstring's ``rh.module(cls=BERTModel, env="my_env")`` class (stand-in)."""

    def __init__(self, model_id, device="cpu"):
        self.model_id = model_id
        self.device = device

    @classmethod
    def get_model_size(cls, model_id):
        return {"bert-base-uncased": 110_000_000}.get(model_id, 0)
