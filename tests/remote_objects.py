"""Functions and classes the tests send to the cluster by import path (tests/ is their project)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import anyio
import anyio.lowlevel

import rhzmq as rh

log = logging.getLogger("tests.remote")


def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


def print_in_background(text: str) -> None:
    """Print ``text`` from a thread of the worker's own: output outside any call, which goes to
    the daemon's log (a call's own prints go to its caller)."""
    t = threading.Thread(target=lambda: print(text, flush=True))
    t.start()
    t.join()


def echo(x: object) -> object:
    return x


def whoami() -> dict[str, object]:
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


def chatty(token: str, lines: int, pause: float) -> int:
    """Print ``lines`` lines tagged with ``token``, pausing between them."""
    for i in range(lines):
        print(f"{token} line {i}")
        time.sleep(pause)
    return lines


def progress(steps: int) -> str:
    for i in range(steps):
        sys.stdout.write(f"\rstep {i + 1}/{steps}")
        sys.stdout.flush()
    sys.stdout.write("\n")
    return "done"


def prints_then_sleeps(lines: int, pause: float, then: float) -> int:
    """Print ``lines`` lines stamped with the ``time.time()`` they were printed at, ``pause``
    apart, then sleep ``then`` seconds: output that must reach the caller while the call runs."""
    for i in range(lines):
        print(f"{time.time()!r} line {i}")
        time.sleep(pause)
    time.sleep(then)
    return lines


async def aprints_then_sleeps(lines: int, pause: float, then: float) -> int:
    """:func:`prints_then_sleeps` as an ``async def`` (its prints happen on the worker's loop)."""
    for i in range(lines):
        print(f"{time.time()!r} line {i}")
        await asyncio.sleep(pause)
    await asyncio.sleep(then)
    return lines


def interleaved(n: int) -> Iterator[int]:
    """A line on stdout, an item, a line on stderr and a log record, ``n`` times over; then an
    item and a last line, which may travel inside the FINAL."""
    for i in range(n):
        print(f"out {i}")
        yield i
        print(f"err {i}", file=sys.stderr)
        log.warning("log %d", i)
    yield n
    print("done")


async def ainterleaved(n: int) -> AsyncIterator[int]:
    """:func:`interleaved` as an async generator."""
    for i in range(n):
        print(f"out {i}")
        yield i
        print(f"err {i}", file=sys.stderr)
        log.warning("log %d", i)
    yield n
    print("done")


def prints_unencodable() -> str:
    """Prints a lone surrogate, which UTF-8 cannot encode."""
    print("bad \udcff text")
    return "returned"


def logs_things() -> int:
    log.warning("careful: %d", 42)
    log.debug("invisible at INFO")
    print("to stderr", file=sys.stderr)
    return 1


def fails(message: str) -> None:
    raise ValueError(message)


def raises_custom() -> None:
    raise CustomError("custom failure", 7)


class CustomError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


async def asleeps(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "slept"


def gc_pause() -> None:
    """Collect, then leave the cyclic GC off: :func:`gc_resume` counts what calls left to it."""
    import gc

    gc.collect()
    gc.disable()


def gc_resume() -> int:
    """Objects in reference cycles made since :func:`gc_pause` (found and freed now)."""
    import gc

    try:
        return gc.collect()
    finally:
        gc.enable()


async def anoop(x: int) -> int:
    return x


def countdown(n: int, pause: float = 0.0) -> Iterator[int]:
    for i in range(n, 0, -1):
        yield i
        time.sleep(pause)


async def acountdown(n: int) -> AsyncIterator[int]:
    for i in range(n, 0, -1):
        yield i
        await anyio.lowlevel.checkpoint()


def unpicklable_result() -> object:
    return threading.Lock()


class Counter(rh.Module):
    """Counts."""

    def __init__(self, start: int = 0) -> None:
        self.n = start
        self.ticks = 0

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    async def slow_double(self, x: int) -> int:
        await anyio.sleep(0.1)
        return 2 * x

    def count_to(self, n: int) -> Iterator[int]:
        yield from range(n)

    async def spin(self) -> None:
        while True:
            self.ticks += 1
            await anyio.sleep(0.01)

    def spin_sync(self) -> None:
        while True:
            self.ticks += 1
            time.sleep(0.01)


class Plain:
    """A class that does not subclass rh.Module."""

    def __init__(self, items: list[int]) -> None:
        self.items = list(items)

    def total(self) -> int:
        return sum(self.items)


def greet(name: str, punctuation: str = "!") -> str:
    """Say hello to someone."""
    return f"hello {name}{punctuation}"


def ticker(n: int, pause: float) -> Iterator[dict[str, int]]:
    """Yield n ticks, pausing between them (tests that items stream as they happen)."""
    for i in range(n):
        print(f"tick {i}")
        yield {"tick": i}
        time.sleep(pause)


def raw_bytes(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def a_set() -> set[int]:
    return {1, 2}


def kwargs_echo(**kwargs: object) -> dict[str, object]:
    return kwargs


class Store:
    """A small key-value store."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.version = 1

    def put(self, key: str, value: object) -> int:
        """Store a value; returns the number of keys."""
        self.data[key] = value
        return len(self.data)

    def get(self, key: str) -> object:
        return self.data[key]


def getenv(key: str) -> str | None:
    return os.environ.get(key)


def setenv(key: str, value: str) -> None:
    os.environ[key] = value


def camelize(text: str) -> str:
    import inflection  # only installed in the env that asks for it

    return str(inflection.camelize(text))


def burn(ms: float) -> int:
    """Pure-Python CPU work for about ``ms`` milliseconds; returns this process's pid."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return os.getpid()


def square_or_fail(x: int) -> int:
    if x == 13:
        raise ValueError("unlucky")
    return x * x


class Tally:
    def __init__(self) -> None:
        self.count = 0

    def bump(self) -> int:
        self.count += 1
        return self.count

    def pid(self) -> int:
        return os.getpid()


def token_echo(token: str, payload: bytes, pause: float) -> tuple[str, int, int]:
    """Echo a caller's token with its payload's size and checksum, after a pause."""
    if pause:
        time.sleep(pause)
    return token, len(payload), sum(payload[:64])


async def atoken_echo(token: str, payload: bytes, pause: float) -> tuple[str, int, int]:
    if pause:
        await anyio.sleep(pause)
    return token, len(payload), sum(payload[:64])


def exit_now(code: int) -> None:
    os._exit(code)


def out_of_memory() -> None:
    raise MemoryError("pretend the worker ran out of memory")


def big_result(size: int) -> bytes:
    return b"x" * size


class Firehose:
    """A generator far faster than its consumers."""

    def __init__(self) -> None:
        self.produced = 0

    def items(self, n: int, size: int) -> Iterator[bytes]:
        for _ in range(n):
            self.produced += 1
            yield b"x" * size

    async def aitems(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            self.produced += 1
            yield i


class SlowStart:
    """Takes ``seconds`` to build: keeps the recovery window open long enough to look into."""

    def __init__(self, seconds: float) -> None:
        time.sleep(seconds)
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


class BuildsOnce:
    """Builds the first time only (a file marks it): rebuilding it after a crash fails."""

    def __init__(self, marker: str) -> None:
        if os.path.exists(marker):
            raise RuntimeError(f"cannot be built twice ({marker} exists)")
        with open(marker, "w"):
            pass

    def ping(self) -> str:
        return "pong"


async def blocking_inside_async() -> list[str]:
    """A blocking cluster call from an async def on the worker's own loop (it must raise)."""
    import rhzmq as rh

    return rh.here.keys()


def returns_coroutine(x: int) -> Coroutine[Any, Any, int]:
    """A plain function handing back a coroutine (a wrapper around an async one)."""
    return asleeps_then(x)


async def asleeps_then(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 2


def on_this_cluster() -> bool:
    return bool(rh.here.on_this_cluster())


class Calculator:
    """Runhouse's test class: class attributes, classmethods, a local-only method."""

    importer = "Calculators Inc"

    def __init__(self, owner: str | None = None) -> None:
        self.model = "Casio"
        self._release_year = 2023
        self.owner = owner

    def summer(self, a: int, b: int) -> int:
        return a + b

    def save(self) -> str:  # a method whose name the stub reserves: reached as obj.remote.save
        return f"saved by {self.owner}"

    @classmethod
    def where(cls) -> int:
        return os.getpid()

    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @classmethod
    def here_pid(cls, local: bool = True) -> int:
        return os.getpid()

    @classmethod
    def factory(cls, owner: str = "factory") -> Calculator:
        return cls(owner=owner)


def steps(n: int, pause: float = 0.05) -> int:
    """Print and log a line per step; returns ``n * 10``."""
    for i in range(n):
        print(f"step {i}")
        log.warning("logged %d", i)
        time.sleep(pause)
    return n * 10


def fails_after(n: int) -> None:
    for i in range(n):
        print(f"before failing {i}")
    raise ValueError(f"failed after {n}")


def call_inner(x: int) -> int:
    """Call ``add`` (in the same worker) through the cluster: its output must reach our caller."""
    print("outer before")
    result: int = rh.here.call("add", "", x, 1)
    print(f"outer after {result}")
    return result


async def acall_inner(x: int) -> int:
    print("async outer before")
    result: int = await rh.here.acall("add", "", x, 1)
    print(f"async outer after {result}")
    return result


def interpreter() -> str:
    """The Python running this worker (which env's)."""
    return sys.executable


def secret_view() -> dict[str, object]:
    """What a worker sees of its delivered secrets: variables, files and their modes, and what
    the providers' own clients read (AWS's from the credentials file alone)."""
    import stat

    import boto3
    import huggingface_hub

    out: dict[str, object] = {}
    root = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "")
    out["aws_file"] = root
    out["aws_mode"] = stat.S_IMODE(os.stat(root).st_mode) if root else None
    out["dir_mode"] = stat.S_IMODE(os.stat(os.path.dirname(os.path.dirname(root))).st_mode)
    saved = {k: os.environ.pop(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:  # only the file now: what boto3 finds there
        out["boto3_key"] = boto3.Session().get_credentials().access_key
        out["boto3_region"] = boto3.Session().region_name
    finally:
        os.environ.update(saved)
    out["hf_token"] = huggingface_hub.get_token()
    out["db_file"] = os.environ.get("DB_PASSWORD_FILE")
    if out["db_file"]:
        with open(str(out["db_file"])) as f:
            out["db_password"] = f.read()
    return out


def path_exists(path: str) -> bool:
    return os.path.exists(path)


def writes_bytes(then_print: bool) -> str:
    """Writes bytes to stdout, as a text stream refuses; optionally carries on and prints."""
    try:
        sys.stdout.write(b"not text")  # type: ignore[arg-type]
    except TypeError as exc:
        if not then_print:
            raise
        print(f"refused: {exc}")
    time.sleep(0.1)  # output waits for the output tick, not the FINAL
    print("still printing")
    return "done"
