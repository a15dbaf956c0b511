"""The HTTP gateway, served by a real uvicorn process, called with httpx, curl and Node's fetch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import remote_objects as ro
from helpers import assert_slow_heads_cut_off, wait_pid_gone, worker_pid

import rhzmq as rh

TOKEN = "s3cret-token-for-tests"


def deploy(cluster: rh.Cluster) -> None:
    for fn in (
        ro.greet,
        ro.ticker,
        ro.raw_bytes,
        ro.a_set,
        ro.kwargs_echo,
        ro.fails,
        ro.sleeps,
        ro.add,
    ):
        rh.function(fn).to(cluster)
    rh.module(ro.Store).to(cluster)(name="store")


@pytest.fixture(scope="module")
def deployed(cluster: rh.Cluster) -> Iterator[str]:
    """The session cluster's gateway URL, with the test objects on the cluster."""
    deploy(cluster)
    url = cluster.gateway_url
    assert url and url.startswith("http://127.0.0.1:")
    yield url
    cluster.delete(["greet", "ticker", "raw_bytes", "a_set", "kwargs_echo", "fails", "store"])


@pytest.fixture(scope="module")
def api(cluster: rh.Cluster) -> Iterator[httpx.Client]:
    """An HTTP client carrying the session cluster's gateway token (on by default)."""
    headers = cluster.gateway_headers()
    assert headers["Authorization"].startswith("Bearer ")
    with httpx.Client(headers=headers, timeout=30) as client:
        yield client


def start_gateway(
    cluster: rh.Cluster, *args: str, token: str | None = None, **extra_env: str
) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, **extra_env}
    env.pop("RHZMQ_TOKEN", None)
    if token:
        env["RHZMQ_TOKEN"] = token
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "--broker",
            cluster.broker_endpoint,
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # the READY handshake
    assert line.startswith("READY "), proc.stderr.read().decode() if proc.stderr else line
    return proc, line.split()[1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    assert wait_pid_gone(proc.pid)


@pytest.fixture(scope="module")
def authed(cluster: rh.Cluster, deployed: str) -> Iterator[str]:
    proc, url = start_gateway(cluster, "--max-body", "2000", token=TOKEN)
    yield url
    stop(proc)


def err(r: httpx.Response) -> dict[str, str]:
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["error"]  # type: ignore[no-any-return]


def test_health_keys_status(deployed: str, api: httpx.Client) -> None:
    assert api.get(f"{deployed}/health").json()["status"] == "ok"
    assert {"greet", "store"} <= set(api.get(f"{deployed}/keys").json()["keys"])
    st = api.get(f"{deployed}/status").json()
    assert "default" in {w["name"] for w in st["workers"]} and "greet" in st["objects"]


def test_post_calls_get_reads(deployed: str, api: httpx.Client) -> None:
    r = api.post(f"{deployed}/greet", json={"args": ["ada"], "kwargs": {"punctuation": "?"}})
    assert r.status_code == 200 and r.json() == {"result": "hello ada?"}
    got = api.post(f"{deployed}/kwargs_echo", json={"kwargs": {"a": 1, "c": [1, 2], "d": True}})
    assert got.json() == {"result": {"a": 1, "c": [1, 2], "d": True}}
    assert api.post(f"{deployed}/store/put", json={"args": ["k", [1, "two"]]}).json() == {
        "result": 1
    }
    assert api.post(f"{deployed}/store/get", json={"kwargs": {"key": "k"}}).json() == {
        "result": [1, "two"]
    }
    assert api.get(f"{deployed}/store/version").json() == {"result": 1}  # a plain attribute
    described = api.get(f"{deployed}/store").json()["result"]
    assert (
        described["methods"] == {"get": "sync", "put": "sync"} and "data" in described["attributes"]
    )
    # GET never calls anything: a function is described, a method refused with the POST form.
    assert api.get(f"{deployed}/greet").json()["result"]["type"] == "function"
    r = api.get(f"{deployed}/store/put", params={"key": "x"})
    assert r.status_code == 405 and "POST /store/put" in err(r)["message"]
    r = api.post(f"{deployed}/store/get", json={"args": ["x"]})  # the GET above put nothing
    assert r.status_code == 500 and err(r)["type"] == "KeyError"


def test_ndjson_streams_lines_before_the_call_ends(deployed: str, api: httpx.Client) -> None:
    arrivals = []
    start = time.monotonic()
    with api.stream("POST", f"{deployed}/ticker", json={"args": [3, 0.4]}, timeout=30) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        # A generator: each arrival time is taken as its line comes off the wire.
        arrivals.extend((time.monotonic() - start, json.loads(line)) for line in r.iter_lines())
    events = [e for _, e in arrivals]
    assert [e["data"] for e in events if e["type"] == "item"] == [
        {"tick": 0},
        {"tick": 1},
        {"tick": 2},
    ]
    assert [e["data"] for e in events if e["type"] == "stdout"] == [
        "tick 0\n",
        "tick 1\n",
        "tick 2\n",
    ]
    assert events[-1] == {"type": "result", "data": None}
    first_item = next(t for t, e in arrivals if e["type"] == "item")
    assert first_item < arrivals[-1][0] - 0.6, "items were held back until the call ended"


def test_ndjson_on_request_for_plain_function(deployed: str, api: httpx.Client) -> None:
    r = api.post(f"{deployed}/add?stream=true", json={"args": [2, 3]})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines == [{"type": "stdout", "data": "adding 2 and 3\n"}, {"type": "result", "data": 5}]
    r = api.post(
        f"{deployed}/fails", json={"args": ["streamed"]}, headers={"accept": "application/x-ndjson"}
    )
    last = json.loads(r.text.splitlines()[-1])
    assert (
        last["type"] == "error" and last["status"] == 500 and last["error"]["type"] == "ValueError"
    )


def test_msgpack_in_and_out(deployed: str, api: httpx.Client) -> None:
    body = msgpack.packb({"args": [1024]})
    r = api.post(
        f"{deployed}/raw_bytes",
        content=body,
        headers={"content-type": "application/msgpack", "accept": "application/msgpack"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/msgpack"
    assert msgpack.unpackb(r.content) == {"result": bytes(range(256)) * 4}


def test_results_json_cannot_carry_get_406(deployed: str, api: httpx.Client) -> None:
    r = api.post(f"{deployed}/raw_bytes", json={"args": [512]})
    assert r.status_code == 406 and "application/msgpack" in err(r)["message"]
    r = api.post(f"{deployed}/a_set", json={}, headers={"accept": "application/msgpack"})
    assert r.status_code == 406 and "plain data" in err(r)["message"]
    # An attribute read by GET holding a value only pickle carries (an int over 64 bits, which
    # schemathesis stored through put once): 406 too, not a gateway error.
    assert api.post(f"{deployed}/store/put", json={"args": ["big", 2**70]}).status_code == 200
    r = api.get(f"{deployed}/store/data")
    assert r.status_code == 406 and "plain data" in err(r)["message"], r.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "type_"),
    [
        ("POST", "/greeet", {"json": {}}, 404, "ObjectNotFound"),
        ("POST", "/store/nope", {"json": {}}, 404, "ObjectNotFound"),
        ("GET", "/store/nope", {}, 404, "ObjectNotFound"),
        (
            "POST",
            "/greet",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "BadRequest",
        ),
        ("POST", "/greet", {"json": [1, 2]}, 400, "BadRequest"),
        ("POST", "/greet", {"json": {"args": "ada"}}, 400, "BadRequest"),
        ("POST", "/greet", {"json": {"argz": []}}, 400, "BadRequest"),
        ("POST", "/greet", {"json": {"args": [1, 2, 3, 4]}}, 422, "TypeError"),
        ("POST", "/greet", {"json": {"kwargs": {"nobody": 1}}}, 422, "TypeError"),
        ("POST", "/fails", {"json": {"args": ["kaput"]}}, 500, "ValueError"),
        ("POST", "/sleeps?timeout=0.2", {"json": {"args": [5]}}, 504, "CallTimeout"),
        ("POST", "/sleeps?timeout=soon", {"json": {"args": [5]}}, 400, "BadRequest"),
        ("PUT", "/keys", {}, 405, "MethodNotAllowed"),
        (
            "POST",
            "/greet",
            {
                "content": msgpack.packb({"args": [msgpack.ExtType(1, b"evil")]}),
                "headers": {"content-type": "application/msgpack"},
            },
            400,
            "BadRequest",
        ),
        ("POST", "/store", {"json": {}}, 405, "MethodNotAllowed"),
    ],
)
def test_error_statuses(
    deployed: str,
    api: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    type_: str,
) -> None:
    r = api.request(method, deployed + path, timeout=30, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    e = err(r)
    assert e["type"] == type_ and e["message"]
    assert "Traceback" not in e["message"]
    if status == 500:
        assert "kaput" in e["message"] and "raise ValueError(message)" in e["traceback"]
    if path == "/greeet":
        assert r.json()["error"]["matches"] == ["greet"]


def test_worker_death_is_503(cluster: rh.Cluster, deployed: str, api: httpx.Client) -> None:
    import threading

    rh.function(ro.sleeps).to(cluster, name="doomed")
    pid = worker_pid(cluster)
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    r = api.post(f"{deployed}/doomed", json={"args": [30]}, timeout=30)
    assert r.status_code == 503 and err(r)["type"] == "WorkerDiedError"
    worker_pid(cluster)  # restarted
    deploy(cluster)  # do not race the broker's rebuild: the tests after this one need them now


def test_openapi_from_live_objects(deployed: str, api: httpx.Client) -> None:
    spec = api.get(f"{deployed}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    greet = spec["paths"]["/greet"]["post"]
    assert greet["summary"] == "Say hello to someone."
    kw = greet["requestBody"]["content"]["application/json"]["schema"]["properties"]["kwargs"]
    assert kw["properties"]["name"] == {"type": "string"}
    assert "/store/put" in spec["paths"] and "/store/version" in spec["paths"]
    assert "application/x-ndjson" in spec["paths"]["/ticker"]["post"]["responses"]["200"]["content"]
    one = api.get(f"{deployed}/store/openapi.json").json()
    assert set(one["paths"]) == {"/store/get", "/store/put", "/store/version", "/store/data"}


def test_bearer_token_auth(authed: str) -> None:
    assert httpx.get(f"{authed}/health").status_code == 200  # probes need no token
    r = httpx.get(f"{authed}/keys")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(f"{authed}/keys", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 403 and err(r)["type"] == "Forbidden"
    r = httpx.get(f"{authed}/keys", headers={"authorization": f"Basic {TOKEN}"})
    assert r.status_code == 403
    ok = httpx.post(
        f"{authed}/greet", json={"args": ["tok"]}, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert ok.json() == {"result": "hello tok!"}


def test_body_limit_is_413(authed: str) -> None:
    r = httpx.post(
        f"{authed}/greet", json={"args": ["x" * 5000]}, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 413 and "2000" in err(r)["message"]


def test_refuses_public_bind_without_token(cluster: rh.Cluster) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RHZMQ_TOKEN"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "--broker",
            cluster.broker_endpoint,
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 2 and "without a token" in out.stderr and "RHZMQ_TOKEN" in out.stderr


def test_secrets_stay_out_of_status_and_logs(cluster: rh.Cluster, authed: str) -> None:
    st = httpx.get(f"{authed}/status", headers={"authorization": f"Bearer {TOKEN}"}).text
    assert TOKEN not in st
    from rhzmq.wire import config as _config

    assert TOKEN not in _config.log_file().read_text(errors="replace")


def test_curl(deployed: str, api: httpx.Client) -> None:
    auth = f"authorization: {api.headers['authorization']}"
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            "-H",
            auth,
            "-H",
            "content-type: application/json",
            "-d",
            '{"args": [20, 22]}',
            f"{deployed}/add",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == {"result": 42}
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", auth, f"{deployed}/nothing"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout == "404"
    # curl's default form body (no content type given) calls nothing: 415.
    out = subprocess.run(
        ["curl", "-s", "-H", auth, "-d", '{"args": [1, 2]}', f"{deployed}/add"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(out.stdout)["error"]["type"] == "UnsupportedMediaType"


NODE_SCRIPT = """
const [base, token] = process.argv.slice(2);
const headers = {"content-type": "application/json", "authorization": `Bearer ${token}`};
const post = await fetch(`${base}/store/put`, {method: "POST", headers,
                                               body: JSON.stringify({args: ["from-node", {n: 1}]})});
const got = await fetch(`${base}/store/get`, {method: "POST", headers,
                                              body: JSON.stringify({kwargs: {key: "from-node"}})});
const stream = await fetch(`${base}/ticker`, {method: "POST", headers, body: JSON.stringify({args: [2, 0.05]})});
const lines = (await stream.text()).trim().split("\\n").map(JSON.parse);
const missing = await fetch(`${base}/store/nothing`, {headers});
console.log(JSON.stringify({post: await post.json(), got: await got.json(), lines, missing: missing.status}));
"""


def test_node_fetch(deployed: str, tmp_path: Path, api: httpx.Client) -> None:
    script = tmp_path / "client.mjs"
    script.write_text(NODE_SCRIPT)
    token = api.headers["authorization"].split()[1]
    out = subprocess.run(
        ["node", str(script), deployed, token], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["got"] == {"result": {"n": 1}}
    assert isinstance(result["post"]["result"], int)
    assert [x["data"] for x in result["lines"] if x["type"] == "item"] == [{"tick": 0}, {"tick": 1}]
    assert result["missing"] == 404


def test_calls_answer_the_same_on_the_fast_and_the_routed_path(
    deployed: str, api: httpx.Client
) -> None:
    """A POST to an object whose description is cached skips Starlette's routing
    (gateway._app.FastCalls); any query string sends it the routed way. Both must answer every
    call alike: results, remote errors, bad bodies, refused types and sizes, msgpack, streams."""
    auth = dict(api.headers)
    as_json = {**auth, "content-type": "application/json"}
    twice = [*auth.items(), ("content-type", "application/json"), ("content-type", "text/plain")]
    cases: list[tuple[str, dict[str, str] | list[tuple[str, str]], bytes]] = [
        ("/greet", as_json, b'{"args": ["ada"], "kwargs": {"punctuation": "?"}}'),
        ("/greet/call", as_json, b'{"data": {"args": ["bob"]}}'),
        ("/store/put", as_json, b'{"args": ["k", [1, 2]]}'),
        ("/store/get", as_json, b'{"args": ["k"]}'),
        ("/store/get", as_json, b'{"args": ["missing"]}'),  # KeyError: 500 with its traceback
        ("/fails", as_json, b'{"args": ["no luck"]}'),
        ("/greet", as_json, b'{"args": [}'),  # not JSON: 400
        ("/greet", as_json, b'{"args": "ada"}'),  # args not a list
        ("/greet", as_json, b'{"args": [], "kwargs": {"nope": 1}}'),  # wrong arguments: 422
        ("/greet", {**auth, "content-type": "text/plain"}, b'{"args": ["x"]}'),  # 415
        ("/greet", as_json, b'{"args": ["' + b"x" * 5000 + b'"]}'),  # a body in several chunks
        ("/store/nope", as_json, b"{}"),  # no such method: the routed path explains (404)
        ("/greet/nope", as_json, b"{}"),
        ("/raw_bytes", {**as_json, "accept": "application/msgpack"}, b'{"args": [16]}'),
        ("/raw_bytes", as_json, b'{"args": [16]}'),  # bytes as JSON: 406
        ("/ticker", as_json, b'{"args": [2, 0]}'),  # a generator: NDJSON
        ("/greet", {**as_json, "accept": "application/x-ndjson"}, b'{"args": ["nd"]}'),
        # A header given twice: the first counts, on both paths (gateway._app.CallHead).
        ("/greet", twice, b'{"args": ["two"]}'),
        ("/greet", twice[::-1], b'{"args": ["two"]}'),
        (
            "/raw_bytes",
            [*twice, ("accept", "application/msgpack"), ("accept", "application/json")],
            b'{"args": [4]}',
        ),
    ]
    for path, _, _ in cases:  # describe every object once: the fast path needs the cache
        api.get(f"{deployed}/{path.split('/')[1]}")

    def answer(r: httpx.Response) -> tuple[int, str, object]:
        kind = r.headers["content-type"]
        if "msgpack" in kind:
            return r.status_code, kind, msgpack.unpackb(r.content)
        if "ndjson" in kind:
            return r.status_code, kind, [json.loads(line) for line in r.text.splitlines()]
        return r.status_code, kind, r.json()

    for path, headers, body in cases:
        with httpx.Client(timeout=30) as plain:  # headers exactly as given, nothing added
            routed = answer(
                plain.post(f"{deployed}{path}?via=routes", headers=headers, content=body)
            )
            fast = answer(plain.post(f"{deployed}{path}", headers=headers, content=body))
        assert fast == routed, path
    # And it is the first that counts, as Starlette's Headers.get reads one.
    with httpx.Client(timeout=30) as plain:
        body = b'{"args": ["two"]}'
        assert plain.post(f"{deployed}/greet", headers=twice, content=body).status_code == 200
        assert plain.post(f"{deployed}/greet", headers=twice[::-1], content=body).status_code == 415


def test_slow_request_heads_are_cut_off(cluster: rh.Cluster) -> None:
    """Issue 13, finding 8 (slowloris): uvicorn has no limit on how long a request's headers may
    take, so connections sending nothing, or a header byte now and then, stayed open forever and
    256 of them shut everyone else out. The gateway closes them after
    RHZMQ_HTTP_HEADER_TIMEOUT (10 s; 1 s here); complete requests are not affected."""
    proc, url = start_gateway(cluster, token=TOKEN, RHZMQ_HTTP_HEADER_TIMEOUT="1")
    try:
        assert_slow_heads_cut_off(url, b"POST /x/y HTTP/1.1")
        # A whole request on a fresh connection still gets its answer.
        r = httpx.get(f"{url}/health")
        assert r.status_code == 200
    finally:
        stop(proc)


def test_head_requests_read_and_never_call(deployed: str, api: httpx.Client) -> None:
    """Starlette answers HEAD on every GET route, and the handlers took anything but GET for a
    call: a HEAD with a JSON body once stored a value. Only POST calls."""
    body = {"args": ["from_head", 1]}
    r = api.request("HEAD", f"{deployed}/store/put", json=body)
    assert r.status_code == 405
    r = api.request("HEAD", f"{deployed}/greet/call", json={"args": ["x"]})
    assert r.status_code == 405
    assert api.request("HEAD", f"{deployed}/greet").status_code == 200  # describes, as GET
    missing = api.post(f"{deployed}/store/get", json={"args": ["from_head"]})
    assert missing.status_code == 500 and err(missing)["type"] == "KeyError"


def test_a_request_head_past_16_kib_gets_431(deployed: str, api: httpx.Client) -> None:
    """httptools reads heads of any size, copying the head again on every read: a 4 MiB head sent
    in small pieces cost the gateway's loop ~0.85 s before anyone looked at the token. A head
    growing past 16 KiB (h11's old limit) is answered 431 and the connection closed; a request
    with an 8 KiB header is answered as always."""
    import socket

    host, port = deployed.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as conn:
        conn.settimeout(5)
        conn.sendall(b"POST /greet HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        answer = b""
        try:
            for _ in range(64):  # 64 KiB in 1 KiB pieces, unless the gateway stops it first
                conn.sendall(b"a" * 1024)
                time.sleep(0.002)
        except OSError:
            pass  # closed under us: what it should do
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"RequestHeaderFieldsTooLarge" in answer
    r = api.get(f"{deployed}/health", headers={"X-Pad": "p" * 8192})
    assert r.status_code == 200


def test_a_request_that_is_not_http_gets_a_json_400(deployed: str) -> None:
    """What the HTTP parser refuses (here an empty Content-Length, which the registry's fuzz
    test found) is answered like every other error, in JSON, not with uvicorn's plain text."""
    import socket

    host, port = deployed.removeprefix("http://").rsplit(":", 1)
    for request in (
        b"POST /greet HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \r\n\r\n",
        b"GET /health HTTP/9.x\r\n\r\n",
    ):
        with socket.create_connection((host, int(port))) as conn:
            conn.settimeout(5)
            conn.sendall(request)
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer
        assert b"content-type: application/json" in head.lower(), head
        assert json.loads(body)["error"]["type"] == "BadRequest"


@pytest.mark.usefixtures("deployed")
def test_a_body_that_stops_arriving_gets_408(cluster: rh.Cluster) -> None:
    """A call whose body stops half-way is answered 408 after RHZMQ_HTTP_BODY_TIMEOUT (30 s;
    1 s here) instead of holding its connection and task forever."""
    import socket

    proc, url = start_gateway(cluster, token=TOKEN, RHZMQ_HTTP_BODY_TIMEOUT="1")
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as conn:
            conn.settimeout(5)
            started = time.monotonic()
            conn.sendall(
                "POST /greet HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"args": ['.encode()
            )
            answer = ""
            while "\r\n\r\n" not in answer or not answer.endswith("}"):  # head and body may
                chunk = conn.recv(4096).decode()  # come in two segments
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith("HTTP/1.1 408"), answer
            assert "did not arrive within 1 s" in answer
            assert 0.9 < time.monotonic() - started < 4
        # A client that goes away half-way through its body is no gateway error: nothing to
        # log as one (it was logged with a traceback, as a bug in the gateway).
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                "POST /greet HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"args": ['.encode()
            )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = httpx.post(f"{url}/greet", json={"args": ["after"]}, headers=auth, timeout=10)
        assert r.status_code == 200  # and the gateway serves on
        proc.send_signal(signal.SIGTERM)
        errors = proc.communicate(timeout=10)[1].decode()
    finally:
        stop(proc)
    assert "gateway error" not in errors and "Traceback" not in errors, errors


def test_the_clusters_machinery_is_not_reachable_over_http(
    cluster: rh.Cluster, deployed: str, api: httpx.Client
) -> None:
    """The built-in objects (cluster.run's runner, the run keeper, the data agent) run commands
    and write files as the cluster's owner: a gateway token must not reach them (found in
    review: a POST to /rhzmq.runs/start forwarded a pickle, a POST to /rhzmq.run ran a shell)."""
    cluster.run(["true"])  # places rhzmq.run on the cluster
    rh.function(ro.add).to(cluster, name="gw_add").run(1, 2, run_name="gw-run").result()
    assert {"rhzmq.run", "rhzmq.runs"} <= set(cluster.keys())
    for path in ("/rhzmq.run", "/rhzmq.runs/start", "/rhzmq.runs/runs", "/__node__.0/spawn"):
        r = api.post(deployed + path, json={"args": [["id > /tmp/x"]]})
        assert r.status_code == 404 and "internal to the cluster" in r.text, (path, r.text)
    cluster.delete("gw_add")
