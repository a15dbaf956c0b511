"""The gateway as a browser-facing server (issue 13, findings 2, 4, 5 and the HTTP part of 8): a
web page open in the user's browser, from another origin or rebinding its own name to 127.0.0.1,
calls nothing; internal objects are never routable; oversized or deeply nested bodies are clear
4xx errors. The browser is a real one: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
import remote_objects as ro
from browser import chromium

import rhzmq as rh


@pytest.fixture(scope="module")
def target(cluster: rh.Cluster) -> Iterator[rh.RemoteObject]:
    counter = rh.module(ro.Counter).to(cluster)(0, name="web_counter")
    yield counter
    cluster.delete("web_counter")


def test_requests_a_web_page_can_make_call_nothing(
    cluster: rh.Cluster, target: rh.RemoteObject
) -> None:
    url = f"{cluster.gateway_url}/web_counter/incr"
    body = json.dumps({"args": [100]})
    auth = cluster.gateway_headers()
    # What a page may send without a preflight: text/plain, a form, a GET — even with the token.
    for headers in (
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
    ):
        r = httpx.post(url, content=body, headers={**headers, **auth})
        assert r.status_code == 415 and r.json()["error"]["type"] == "UnsupportedMediaType"
    assert httpx.get(url, params={"k": 100}, headers=auth).status_code == 405
    # A name that is not this gateway's (DNS rebinding): refused before anything else.
    r = httpx.post(url, json={"args": [100]}, headers={**auth, "host": "evil.test:80"})
    assert r.status_code == 403 and "evil.test" in r.json()["error"]["message"]
    assert target.n == 0
    # /health skips the token for GET only; POST /health is a call like any other.
    assert httpx.get(f"{cluster.gateway_url}/health").status_code == 200
    assert httpx.post(f"{cluster.gateway_url}/health", json={}).status_code == 401
    # The node agents (spawn, shutdown...) are the cluster's own: never routable.
    r = httpx.post(f"{cluster.gateway_url}/__node__.0/shutdown", json={}, headers=auth)
    assert r.status_code == 404 and "internal" in r.json()["error"]["message"]
    # JSON nested 450 deep was a 500 (RecursionError); now a 400 that says why.
    deep = '{"args": [' + "[" * 450 + "]" * 450 + "]}"
    r = httpx.post(url, content=deep, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 400 and "nested deeper" in r.json()["error"]["message"]
    assert target.n == 0


PAGE = """<!doctype html><title>not the gateway</title><script>
window.results = (async () => {
  const gw = %(gateway)s, rebound = %(rebound)s, out = {};
  const body = JSON.stringify({args: [1000]});
  // 1. Cross-origin "simple" requests: the browser sends them without asking anyone.
  for (const [name, init] of Object.entries({
    text: {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"}, body},
    form: {method: "POST", mode: "no-cors", body: new URLSearchParams({args: "[1000]"})},
    get: {method: "GET", mode: "no-cors"},
  })) {
    try { await fetch(gw + "/web_counter/incr", init); out[name] = "sent"; }
    catch (e) { out[name] = "blocked: " + e; }
  }
  // 2. A JSON call with a guessed token needs a CORS preflight, which the gateway never grants.
  try {
    const r = await fetch(gw + "/web_counter/incr", {method: "POST",
      headers: {"content-type": "application/json", "authorization": "Bearer guess"}, body});
    out.cors = "read " + r.status;
  } catch (e) { out.cors = "blocked"; }
  // 3. DNS rebinding: this page's own name now points at 127.0.0.1, so the gateway is
  //    same-origin and the page could read answers; its Host header gives it away.
  const r = await fetch(rebound + "/keys");
  out.rebound = {status: r.status, body: await r.text()};
  return out;
})();
</script>"""


class _Site(http.server.BaseHTTPRequestHandler):
    """The attacker's site at evil.test: its page, and — as DNS rebinding makes it — every other
    path reaching the gateway under the attacker's name (the Host header stays evil.test)."""

    page = b""
    gateway = ("127.0.0.1", 0)

    def do_GET(self) -> None:
        if self.path == "/evil.html":
            self._answer(200, "text/html", self.page)
            return
        import http.client

        upstream = http.client.HTTPConnection(*self.gateway, timeout=10)
        upstream.request("GET", self.path, headers={"Host": self.headers["Host"]})
        reply = upstream.getresponse()
        self._answer(reply.status, reply.getheader("content-type") or "", reply.read())
        upstream.close()

    def _answer(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_page_in_chromium_cannot_call_or_read_the_gateway(
    cluster: rh.Cluster, target: rh.RemoteObject
) -> None:
    gateway = cluster.gateway_url
    assert gateway is not None
    port = int(gateway.rsplit(":", 1)[1])
    # The attacker's site on another loopback address but the gateway's port, so that after the
    # "rebinding" the page and the gateway share one origin, as in the real attack.
    _Site.page = (PAGE % {"gateway": json.dumps(gateway), "rebound": json.dumps("")}).encode()
    _Site.gateway = ("127.0.0.1", port)
    site = http.server.ThreadingHTTPServer(("127.0.0.2", port), _Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        with chromium("--host-resolver-rules=MAP evil.test 127.0.0.2") as browser:
            page = browser.new_page()
            page.goto(f"http://evil.test:{port}/evil.html")
            results = page.evaluate("window.results")
    finally:
        site.shutdown()
        site.server_close()
    # The simple requests left the browser (no-cors sends them blindly) and changed nothing.
    assert results["text"] == results["form"] == results["get"] == "sent", results
    assert results["cors"] == "blocked", results
    # Same origin after the rebinding: the page reads the answer, and it is a refusal.
    assert results["rebound"]["status"] == 403, results
    assert "web_counter" not in results["rebound"]["body"]
    assert "evil.test" in results["rebound"]["body"]
    assert target.n == 0  # no call ran
