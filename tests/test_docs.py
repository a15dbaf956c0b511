"""What a newcomer reads and runs: the docs stand alone, CI runs the README's test command, and
the suite cannot pass by skipping."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "the README starts with a bash block of two commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_the_docs_stand_alone() -> None:
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert "../shared" not in path.read_text(), f"{path.name} points outside the repository"


def test_ci_runs_the_readme_test_command_in_a_fresh_venv() -> None:
    demo, tests = _readme_commands()
    assert "rhzmq.demo" in demo and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), "CI must run the README's test command as written"
    assert ci.index("rm -rf .venv") < ci.index(tests)  # a fresh environment every run
    assert "requirements/lock.txt" in (ROOT / "tests" / "setup.py").read_text()


def test_a_skipped_test_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\ndef test_ok():\n    pass\n\n"
        "@pytest.mark.skip(reason='no sshd here')\ndef test_skipped():\n    pass\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "noskip", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "tests"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert run.returncode == 1, run.stdout
    assert "1 test(s) skipped" in run.stdout and "no sshd here" in run.stdout
