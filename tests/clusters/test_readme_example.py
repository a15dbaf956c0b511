"""The README's Quickstart, run as written (issue 14: "the seed's example runs as written on the
local and an SSH cluster"): its Python block, top-level ``await`` included, executed as one cell
of a real Jupyter kernel — on the local daemon and on the SSH cluster. Only the line that
makes the cluster (the SSH one is loaded by its saved name) and the final teardown (the session
owns its clusters) are changed, and one print of the counter is added before it is deleted."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

import rhzmq as rh

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart() -> str:
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_readme_quickstart_runs_in_a_notebook(
    any_cluster: rh.Cluster, rhzmq_home: Path
) -> None:
    code = quickstart()
    making = 'cluster = rh.cluster("local").up_if_not()'
    assert making in code and code.rstrip().endswith("cluster.teardown()")
    if any_cluster.name != "local":
        any_cluster.save()
        code = code.replace(making, f"cluster = rh.cluster({any_cluster.name!r}).up_if_not()")
    code = code.rstrip().removesuffix("cluster.teardown()")
    deleting = 'cluster.delete("counter")'
    code = code.replace(deleting, f"print('RESULT', c.n)\n{deleting}")

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env={**os.environ, "RHZMQ_HOME": str(rhzmq_home)}, cwd=str(README.parent))
    client = manager.blocking_client()
    client.start_channels()
    out: list[str] = []
    errors: list[dict[str, object]] = []

    def hook(msg: dict[str, object]) -> None:
        content = msg["content"]
        assert isinstance(content, dict)
        if msg["msg_type"] == "stream":
            out.append(str(content["text"]))
        elif msg["msg_type"] == "error":
            errors.append(content)

    try:
        client.wait_for_ready(timeout=60)
        client.execute_interactive(code, output_hook=hook, timeout=120)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    text = "".join(out)
    assert errors == [], "\n".join(str(t) for e in errors for t in e.get("traceback", []))  # type: ignore[union-attr]
    assert "(add) adding 1 and 2" in text  # the remote print, streamed into the cell
    assert "RESULT 7" in text  # incr() twice on the remote counter: 5 -> 6 -> 7
    assert "counter" not in any_cluster.keys()  # the example deleted what it made
    any_cluster.delete("add")
