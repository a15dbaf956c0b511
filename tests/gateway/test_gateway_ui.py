"""A cluster's live view at the gateway's /ui (issue 19), in Debian's Chromium: signed in with the
gateway token, it shows calls/s rising while a client calls, a line printed on the cluster
arriving in the log tail, deletes an object, and tears down a cluster of its own. And what an
attacker gets: no page without a session, no change without the CSRF token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import remote_objects as ro
from browser import chromium
from helpers import wait_pid_gone

import rhzmq as rh

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
TESTS = Path(__file__).resolve().parents[1]


def off_loop(fn: Any, *args: Any) -> Any:
    """Run a blocking rhzmq call in a thread: Playwright's sync API runs an event loop in this
    one, and a blocking call inside a running loop is refused with a warning."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join(60)
    return out[0]


def _sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url + "/ui")
    page.wait_for_url("**/ui/signin")
    page.get_by_label("Gateway token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("connected · broker pid").wait_for()


def test_the_live_view_follows_calls_and_the_log(cluster: rh.Cluster) -> None:
    url, token = cluster.gateway_url, cluster.gateway_token
    assert url and token
    add = rh.function(ro.echo).to(cluster, name="ui_add")
    say = rh.function(ro.print_in_background).to(cluster, name="ui_say")
    rh.module(ro.Counter).to(cluster)(0, name="ui_counter")
    stop = threading.Event()

    def calls() -> None:
        while not stop.is_set():
            add(1)

    caller = threading.Thread(target=calls)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            _sign_in(page, url, token)
            workers = page.locator("#workers tr")
            workers.first.wait_for()
            assert "default" in page.inner_text("#workers")
            page.get_by_role("button", name="Delete ui_counter").wait_for()
            # Calls/s rises while a client calls.
            caller.start()
            page.wait_for_function(
                "() => parseFloat(document.getElementById('rate').textContent) >= 5", timeout=20_000
            )
            page.wait_for_function(
                "() => document.getElementById('line').getAttribute('points').split(' ').length >= 3",
                timeout=20_000,
            )
            # A line printed on the cluster arrives in the log tail.
            marker = f"ui-log-marker-{os.getpid()}-{time.time_ns()}"
            off_loop(say, marker)
            page.locator("#log", has_text=marker).wait_for(timeout=15_000)
            page.screenshot(path=str(IMAGES / "gateway-live.png"))
            stop.set()
            caller.join(30)
            # Delete an object, confirmed.
            page.get_by_role("button", name="Delete ui_counter").click()
            page.get_by_role("dialog").get_by_role("button", name="Delete ui_counter").click()
            page.get_by_text("Deleted object ui_counter.").wait_for()
            page.get_by_role("button", name="Delete ui_counter").wait_for(state="detached")
            assert "ui_counter" not in off_loop(cluster.keys)
    finally:
        stop.set()
        if caller.is_alive():
            caller.join(30)
        cluster.delete(["ui_add", "ui_say"])


def test_no_session_no_page_and_no_change(cluster: rh.Cluster) -> None:
    url, token = cluster.gateway_url, cluster.gateway_token
    assert url and token
    port = url.rsplit(":", 1)[1]
    with httpx.Client(base_url=url, timeout=10) as anon:
        r = anon.get("/ui")
        assert r.status_code == 303 and r.headers["location"] == "/ui/signin"
        assert anon.get("/ui/signin").status_code == 200
        for path in ("/ui/events", "/ui/session"):
            assert anon.get(path).status_code == 401
        assert anon.post("/ui/teardown", json={}).status_code == 401
        # Sign-in: only from the gateway's own origin, only with its token.
        origin = {"Origin": url}
        assert anon.post("/ui/session", json={"token": "guess"}, headers=origin).status_code == 401
        r = anon.post("/ui/session", json={"token": token}, headers={"Origin": "http://evil.test"})
        assert r.status_code == 403
        r = anon.post("/ui/session", json={"token": token}, headers=origin)
        assert r.status_code == 201
        name = f"rhzmq_ui_{port}"
        jar = {"Cookie": f"{name}={r.cookies[name]}"}
        csrf = r.json()["csrf"]
        # The session opens /ui only: calls to objects still need the token.
        assert anon.get("/keys", headers=jar).status_code == 401
        assert anon.get("/ui/session", headers=jar).json()["csrf"] == csrf
        # Changes without the CSRF token, or from another origin, are refused.
        for headers in (
            origin,
            {"Origin": "http://evil.test", "X-CSRF-Token": csrf},
            {"X-CSRF-Token": csrf},
        ):
            r = anon.post("/ui/delete", json={"name": "x"}, headers={**headers, **jar})
            assert r.status_code == 403, r.text
        for machinery in ("default", "__node__.0", "rhzmq.runs", "rhzmq.run"):
            r = anon.post(
                "/ui/delete",
                json={"name": machinery},
                headers={**origin, **jar, "X-CSRF-Token": csrf},
            )
            assert r.status_code == 422, (machinery, r.text)
        assert anon.get("/health").status_code == 200  # nothing was torn down


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    """A local cluster in its own RHZMQ_HOME, started by another process; stopped by PID."""
    home = tmp_path / "home"
    env = {**os.environ, "RHZMQ_HOME": str(home), "PYTHONPATH": str(TESTS)}
    script = (
        "import json, rhzmq as rh\n"
        "c = rh.cluster('local', gateway_port=0).up_if_not()\n"
        "print(json.dumps({'url': c.gateway_url, 'token': c.gateway_token}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    pid = int(json.loads((home / "local" / "daemon.json").read_text())["pid"])
    try:
        yield info["url"], info["token"], pid
    finally:
        if not wait_pid_gone(pid, 0.1):
            os.kill(pid, signal.SIGKILL)
        assert wait_pid_gone(pid)


def test_tear_a_cluster_down_from_the_page(own_cluster: tuple[str, str, int]) -> None:
    url, token, pid = own_cluster
    with chromium() as browser:
        page = browser.new_page()
        _sign_in(page, url, token)
        page.get_by_role("button", name="Tear down the cluster").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Cancel").click()
        time.sleep(0.5)
        assert not wait_pid_gone(pid, 0.1)  # cancelled: still running
        page.get_by_role("button", name="Tear down the cluster").click()
        dialog.get_by_role("button", name="Tear down").click()
        page.get_by_text("the cluster is shutting down").first.wait_for()
        assert wait_pid_gone(pid, 30), "the daemon outlived its teardown"
