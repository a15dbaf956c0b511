"""Notebooks (issue 14): a real Jupyter kernel (ipykernel, started and driven by jupyter_client
over its own ZeroMQ protocol) runs cells the way a notebook user writes them. ipykernel runs
every cell inside its own event loop, so every blocking call here used to raise
SyncCallInEventLoop; functions and classes defined in the notebook itself go by value."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

import rhzmq as rh


class Cell:
    """What one executed cell showed: its streams, its result and its error."""

    def __init__(self) -> None:
        self.stdout = ""
        self.stderr = ""
        self.result: str | None = None
        self.error: dict[str, Any] | None = None

    def hook(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                self.stdout += content["text"]
            else:
                self.stderr += content["text"]
        elif kind == "execute_result":
            self.result = content["data"]["text/plain"]
        elif kind == "error":
            self.error = content


@pytest.fixture(scope="module")
def kernel(cluster: rh.Cluster, rhzmq_home: Path) -> Iterator[BlockingKernelClient]:
    manager = KernelManager(kernel_name="python3")
    env = {**os.environ, "RHZMQ_HOME": str(rhzmq_home)}
    manager.start_kernel(env=env, cwd=str(Path(__file__).parent))
    client = manager.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    assert not manager.is_alive()


def run(kernel: BlockingKernelClient, code: str, timeout: float = 60) -> Cell:
    cell = Cell()
    reply = kernel.execute_interactive(
        textwrap.dedent(code), output_hook=cell.hook, timeout=timeout
    )
    assert reply["content"]["status"] in ("ok", "error")
    return cell


def test_a_notebook_sends_its_own_functions_and_classes(kernel: BlockingKernelClient) -> None:
    cell = run(
        kernel,
        """
        import rhzmq as rh
        c = rh.cluster("local").up_if_not()

        def triple(x):
            print("tripling", x)
            return 3 * x

        fn = rh.function(triple).to(c, name="nb_triple")
        fn(4)
        """,
    )
    assert cell.error is None, cell.error
    assert cell.result == "12"
    assert "tripling 4" in cell.stdout  # the remote print, streamed into the cell's output
    assert "RuntimeWarning" not in cell.stderr and "SyncCallInEventLoop" not in cell.stderr
    cell = run(
        kernel,
        """
        class Tally:
            def __init__(self, start):
                self.total = start

            def add(self, x):
                self.total += x
                return self.total

        tally = rh.module(Tally).to(c)(10, name="nb_tally")
        tally.add(2)
        tally.add(3)
        """,
    )
    assert cell.error is None, cell.error
    assert cell.result == "15"
    assert run(kernel, "tally.total").result == "15"  # a remote attribute read


def test_top_level_await_and_errors_in_cells(kernel: BlockingKernelClient) -> None:
    cell = run(kernel, "await fn.acall(5)")
    assert cell.error is None and cell.result == "15", cell.error
    cell = run(
        kernel,
        """
        def fails(x):
            raise ValueError(f"bad input {x}")

        rh.function(fails).to(c, name="nb_fails")(7)
        """,
    )
    assert cell.error is not None
    assert cell.error["ename"] == "ValueError" and "bad input 7" in cell.error["evalue"]
    cell = run(kernel, "c.delete(['nb_triple', 'nb_tally', 'nb_fails']); sorted(c.keys())")
    assert cell.error is None and "nb_" not in (cell.result or ""), cell
