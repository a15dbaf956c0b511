"""The registry's web UI (issue 19), end to end: a real ``python -m den serve`` (SQLite), Debian's
Chromium driven by Playwright, two users with their own tokens.

Alice signs in, finds a resource among a thousand, reads its history, compares two versions side
by side, rolls back, and shares it with Bob, who finds it under "shared with me". Then what an
attacker tries: pages without a session, a cross-site change without the CSRF token, and a
secret's value looked for in every page the UI shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import chromium
from conftest import DenServer, start_den, stop_den
from helpers import SECRET_VALUES

import rhzmq as rh

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SECRET = SECRET_VALUES["db"]


@pytest.fixture(scope="module")
def ui_den(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DenServer]:
    """A registry of its own (SQLite: the UI reads through the same store on either database)."""
    home = tmp_path_factory.mktemp("den-ui")
    server = start_den(f"sqlite:///{home / 'den' / 'den.db'}", "sqlite", home)
    yield server
    stop_den(server)


def _seed(den: DenServer) -> tuple[str, str, str, str]:
    alice, a = den.user("alice")
    bob, _ = den.user("bob")
    alice_token, bob_token = den.tokens[-2], den.tokens[-1]
    with httpx.Client(
        base_url=den.url, headers={"Authorization": f"Bearer {alice_token}"}, timeout=30
    ) as http:
        # A thousand resources: the lists page through them, fifty at a time.
        for i in range(1000):
            r = http.put(f"/resources/{alice}/item-{i:04d}", json={"type": "blob", "config": {}})
            assert r.status_code == 201, r.text
    env = a.save(f"/{alice}/train-env", "env", {"reqs": ["numpy"], "python": "3.11"})
    a.save(
        f"/{alice}/train-env",
        "env",
        {"reqs": ["numpy", "torch"], "python": "3.11"},
        etag=env["etag"],
    )
    a.save(
        f"/{alice}/trainer",
        "function",
        {"fn": "train.main"},
        lineage=[{"name": f"/{alice}/train-env", "version": 2}],
    )
    a.save(
        f"/{alice}/db-password",
        "secret",
        {"name": "db-password", "provider": "postgres", "values": {"password": SECRET}},
    )
    a.create_group(f"{alice}-ml", defaults={"autostop_mins": 30})
    return alice, alice_token, bob, bob_token


def _sign_in(page: object, den: DenServer, token: str) -> None:
    page.goto(den.url + "/")  # type: ignore[attr-defined]
    page.wait_for_url("**/signin")  # type: ignore[attr-defined]
    page.get_by_label("Token").fill(token)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.get_by_text("Signed in as").wait_for()  # type: ignore[attr-defined]


def test_sign_in_find_diff_roll_back_share(ui_den: DenServer) -> None:
    den = ui_den
    alice, alice_token, bob, bob_token = _seed(den)
    IMAGES.mkdir(parents=True, exist_ok=True)
    pages_html: list[str] = []
    with chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1100, "height": 720})
        page = ctx.new_page()
        _sign_in(page, den, alice_token)
        # The session is an HttpOnly, SameSite=Strict cookie; the token is not stored anywhere.
        (cookie,) = ctx.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert alice_token not in json.dumps(ctx.storage_state())
        # My resources: a thousand and more, fifty a page, fast.
        t0 = time.monotonic()
        page.get_by_role("heading", name="My resources").wait_for()
        page.get_by_role("link", name=f"/{alice}/item-0000").wait_for()
        assert page.locator("table.grid tbody tr").count() == 50
        page.get_by_role("button", name="Next").click()
        page.get_by_role("link", name=f"/{alice}/item-0050").wait_for()
        assert time.monotonic() - t0 < 5
        page.get_by_role("button", name="Previous").click()
        page.get_by_role("link", name=f"/{alice}/item-0000").wait_for()
        # Search by name and filter by type.
        page.get_by_label("Name contains").fill("train")
        page.get_by_label("Type").select_option("env")
        page.get_by_role("button", name="Filter").click()
        page.get_by_role("link", name=f"/{alice}/train-env").wait_for()
        page.get_by_role("link", name=f"/{alice}/item-0000").wait_for(state="detached")
        assert page.locator("table.grid tbody tr").count() == 1
        page.screenshot(path=str(IMAGES / "den-resources.png"))
        pages_html.append(page.content())
        # The resource page: config, history with who and when, lineage elsewhere.
        page.get_by_role("link", name=f"/{alice}/train-env").click()
        page.get_by_role("heading", name=f"/{alice}/train-env").wait_for()
        history = page.locator("section", has=page.get_by_role("heading", name="History"))
        history.get_by_role("button", name="Roll back to v1").wait_for()
        assert history.locator("tbody tr").count() == 2
        assert alice in history.inner_text()
        # Side-by-side diff of versions 1 and 2 (the defaults picked: the latest two).
        page.get_by_role("button", name="Compare").click()
        diff = page.locator("table.diff")
        diff.wait_for()
        assert "Version 1 → version 2" in diff.inner_text()
        assert diff.locator("td.add", has_text="torch").count() == 1
        page.screenshot(path=str(IMAGES / "den-resource.png"), full_page=True)
        pages_html.append(page.content())
        # Roll back to version 1, confirming in the dialog.
        page.get_by_role("button", name="Roll back to v1").click()
        dialog = page.get_by_role("dialog")
        assert "version 3" in dialog.inner_text()
        dialog.get_by_role("button", name="Roll back to v1").click()
        page.get_by_text("Saved version 3, equal to version 1.").wait_for()
        page.get_by_text("rollback to v1").wait_for()
        # Share with Bob, write access.
        page.get_by_label("Share with (users, or @group)").fill(bob)
        page.get_by_label("Access").select_option("write")
        page.get_by_role("button", name="Share", exact=True).click()
        page.get_by_role("button", name=f"Revoke {bob}").wait_for()
        # Lineage links lead between resources.
        page.goto(f"{den.url}/#/r/{alice}/trainer")
        page.get_by_role("link", name=f"/{alice}/train-env (v2)").click()
        page.get_by_role("heading", name=f"/{alice}/train-env").wait_for()
        # Groups, secrets, tokens and users: the other views, never a secret's value.
        for hash_, heading in [
            (f"#/g/{alice}-ml", f"Group {alice}-ml"),
            ("#/secrets", "Secrets"),
            (f"#/r/{alice}/db-password", f"/{alice}/db-password"),
            ("#/tokens", "Your tokens"),
        ]:
            page.goto(f"{den.url}/{hash_}")
            page.get_by_role("heading", name=heading, exact=True).wait_for()
            page.get_by_text("Loading…").wait_for(state="detached")
            if hash_ == "#/secrets":
                page.get_by_role("cell", name="postgres").wait_for()
            page.wait_for_load_state("networkidle")
            pages_html.append(page.content())
            if hash_ == "#/secrets":
                assert "postgres" in page.inner_text("main") and "password" in page.inner_text(
                    "main"
                )
                page.screenshot(path=str(IMAGES / "den-secrets.png"))
            if hash_.startswith("#/g/"):
                assert "autostop_mins" in page.inner_text("main")
        ctx.close()

        # Bob signs in and finds it under "shared with me".
        ctx = browser.new_context()
        page = ctx.new_page()
        _sign_in(page, den, bob_token)
        page.get_by_role("link", name="Shared with me").first.click()
        page.get_by_role("link", name=f"/{alice}/train-env").wait_for()
        pages_html.append(page.content())
        ctx.close()
    for html in pages_html:
        assert SECRET not in html
    # Nor did any answer the UI's API calls could make carry it: the redacted views.
    with httpx.Client(base_url=den.url, headers={"Authorization": f"Bearer {alice_token}"}) as http:
        assert SECRET not in http.get("/secrets").text
        assert SECRET not in http.get(f"/resources/{alice}/db-password?redact=true").text


def test_an_attacker_gets_no_page_and_changes_nothing(ui_den: DenServer) -> None:
    den = ui_den
    alice, a = den.user("mallory-target")
    token = den.tokens[-1]
    a.save(f"/{alice}/thing", "env", {"x": 1})
    with httpx.Client(base_url=den.url, timeout=10) as anon:
        # No session: the page sends you to sign in; the API is a 401.
        r = anon.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert anon.get("/signin").status_code == 200
        assert anon.get("/resources").status_code == 401
        assert anon.get("/session").status_code == 401
        assert anon.get("/static/../_app.py").status_code in (401, 404)
        # A forged cookie is no session.
        cookie_name = f"den_session_{den.url.rsplit(':', 1)[1]}"
        r = anon.get("/resources", headers={"Cookie": f"{cookie_name}=x"})
        assert r.status_code == 401
        # Sign-in from another site's page is refused; a wrong token too.
        r = anon.post("/session", json={"token": token}, headers={"Origin": "http://evil.test"})
        assert r.status_code == 403
        assert "set-cookie" not in r.headers
        origin = den.url
        r = anon.post("/session", json={"token": "den_wrong"}, headers={"Origin": origin})
        assert r.status_code == 401
        r = anon.post("/session", json={"token": token}, headers={"Origin": origin})
        assert r.status_code == 201
        csrf = r.json()["csrf"]
        jar = {"Cookie": f"{cookie_name}={r.cookies[cookie_name]}"}
        # Signed in, a change without the CSRF token, or from another origin, is refused.
        share = f"/resources/{alice}/thing/shares"
        body = {"principals": ["root"], "access_level": "write"}
        assert anon.get("/session", headers=jar).json()["name"] == alice
        for headers in (
            {"Origin": origin},
            {"Origin": "http://evil.test", "X-CSRF-Token": csrf},
            {"X-CSRF-Token": "forged", "Origin": origin},
            {"X-CSRF-Token": csrf},  # neither Origin nor Sec-Fetch-Site: not our page
        ):
            r = anon.post(share, json=body, headers={**headers, **jar})
            assert r.status_code == 403, (headers, r.text)
        assert a.shared_with(f"/{alice}/thing") == []
        r = anon.post(share, json=body, headers={"Origin": origin, "X-CSRF-Token": csrf, **jar})
        assert r.status_code == 200, r.text
        # Signing out ends the session; revoking the token it was made from does too.
        r = anon.delete("/session", headers={"Origin": origin, "X-CSRF-Token": csrf, **jar})
        assert r.status_code == 204
        assert anon.get("/session", headers=jar).status_code == 401
        r = anon.post("/session", json={"token": token}, headers={"Origin": origin})
        jar = {"Cookie": f"{cookie_name}={r.cookies[cookie_name]}"}
        assert anon.get("/session", headers=jar).status_code == 200
        spare = a.create_token("spare")
        with httpx.Client(
            base_url=den.url, headers={"Authorization": f"Bearer {spare['token']}"}
        ) as other:
            den.tokens.append(spare["token"])
            me = other.get("/session").json()
            assert me["csrf"] is None and me["name"] == alice
            token_id = next(t["id"] for t in a.tokens() if t["name"] == "initial")
            assert other.delete(f"/tokens/{token_id}").status_code == 204
        assert anon.get("/session", headers=jar).status_code == 401  # its token was revoked
        token = spare["token"]
        a = den.client(token)
    # In a real browser: a cross-site page's form POST and fetch reach the registry without the
    # cookie (SameSite=Strict) and without the CSRF token; nothing changes.
    with chromium("--host-resolver-rules=MAP evil.test 127.0.0.1") as browser:
        ctx = browser.new_context()
        page = ctx.new_page()
        _sign_in(page, den, token)
        port = den.url.rsplit(":", 1)[1]
        evil = f"http://evil.test:{port}/signin"  # any page of another origin will do
        page.goto(evil)
        result = page.evaluate(
            """async ([url, path]) => {
                try {
                  const r = await fetch(url + path, {method: "POST", mode: "no-cors",
                    credentials: "include", headers: {"content-type": "text/plain"},
                    body: JSON.stringify({principals: ["root"], access_level: "read"})});
                  return "sent " + r.type;
                } catch (e) { return "blocked " + e; }
            }""",
            [den.url, f"/resources/{alice}/thing/shares"],
        )
        assert result.startswith(("sent", "blocked")), result
        ctx.close()
    assert [s["principal"] for s in a.shared_with(f"/{alice}/thing")] == ["root"]
    assert all(s["access_level"] == "write" for s in a.shared_with(f"/{alice}/thing"))
    assert token not in den.read_log()


def test_the_clusters_page_shows_status_nodes_uptime_and_cost(ui_den: DenServer) -> None:
    """Saved clusters with what the registry knows of each: an on-demand one (as its client saves
    it: allocation with launch time and hourly price) shows its uptime and cost so far."""
    den = ui_den
    carol, c = den.user("carol")
    launched = time.time() - 2 * 3600  # two hours ago, at $1.25 an hour for both nodes
    c.save(
        f"/{carol}/gpu",
        "cluster",
        {
            "kind": "ondemand",
            "name": "gpu",
            "instance_type": "A10G:1",
            "provider": "aws",
            "region": "us-east-1",
            "num_nodes": 2,
            "allocation": {
                "status": "running",
                "size": "g5.xlarge",
                "hourly_price": 1.25,
                "launched_at": launched,
                "node_ids": ["i-1", "i-2"],
            },
        },
    )
    c.save(f"/{carol}/box", "cluster", {"kind": "ssh", "name": "box", "host": ["10.0.0.5"]})
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1100, "height": 500}).new_page()
        _sign_in(page, den, den.tokens[-1])
        page.get_by_role("link", name="Clusters").click()
        page.get_by_role("heading", name="Clusters").wait_for()
        row = page.get_by_role("row").filter(has_text=f"/{carol}/gpu")
        row.wait_for()
        cells = row.locator("td").all_inner_texts()
        assert cells[:3] == ["ondemand", "running", "2"]
        assert "A10G:1 (g5.xlarge) on aws us-east-1" in cells[3]
        assert cells[4].startswith("2h ")  # uptime from launch
        assert cells[5] in ("$2.50", "$2.51")  # 2 h at $1.25/h, so far
        ssh_row = page.get_by_role("row").filter(has_text=f"/{carol}/box").locator("td")
        assert ssh_row.all_inner_texts()[:3] == ["ssh", "saved", "1"]
        page.screenshot(path=str(IMAGES / "den-clusters.png"))


def test_an_admin_revokes_another_users_token(ui_den: DenServer) -> None:
    den = ui_den
    dave, dave_client = den.user("dave")
    dave_token = den.tokens[-1]
    assert dave_client.whoami()["name"] == dave
    den.user("erin")
    erin_token = den.tokens[-1]
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1100, "height": 600}).new_page()
        _sign_in(page, den, den.admin_token)
        page.get_by_role("link", name="Users").click()
        page.get_by_role("link", name=f"{dave}'s tokens").click()
        page.get_by_role("heading", name=f"Tokens of {dave}").wait_for()
        assert page.get_by_role("button", name="Make token").count() == 0  # admins never mint
        page.get_by_role("button", name="Revoke").first.click()
        page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
        page.get_by_role("cell", name="no").wait_for(state="detached")
    with pytest.raises(rh.InvalidToken), rh.DenClient(den.url, dave_token) as gone:
        gone.whoami()  # refused from its next request
    # A user who is not an admin may not look at someone else's tokens.
    with httpx.Client(base_url=den.url, headers={"Authorization": f"Bearer {erin_token}"}) as http:
        r = http.get("/tokens", params={"user": dave})
        assert r.status_code == 403 and "server admin" in r.json()["error"]["message"]
