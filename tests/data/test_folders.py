"""Folders and files on this disk and on S3 (moto's real server, through libcloud's S3 driver
at its endpoint): round trips, incremental and resumed copies, saving, and each error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from s3server import S3Server, start_moto, stop

import rhzmq as rh

CONTENT = {
    "top.txt": "plain text\n",
    "bin/zeros.bin": bytes(1000),
    "bin/all-bytes.bin": bytes(range(256)) * 40,
    "deep/er/still/ünï cödé ✓.txt": "unicode names and content: ✓ ü 日本\n",
    "obj.pkl": {"a": [1, 2, 3]},
}


def _expected() -> dict[str, bytes | None]:
    """Each file's bytes (None for the pickled object, checked by unpickling)."""
    return {
        k: v if isinstance(v, bytes) else v.encode() if isinstance(v, str) else None
        for k, v in CONTENT.items()
    }


def _check_content(folder: rh.Folder) -> None:
    import pickle

    assert folder.ls(recursive=True) == sorted(CONTENT)
    for name, want in _expected().items():
        got = folder.get(name)
        if want is None:
            assert pickle.loads(got) == {"a": [1, 2, 3]}
        else:
            assert got == want, name


def test_a_folder_on_disk_round_trips_nested_binary_and_unicode(tmp_path: Path) -> None:
    f = rh.folder(str(tmp_path / "src")).mkdir().put(CONTENT)
    _check_content(f)
    assert f.ls() == ["bin/", "deep/", "obj.pkl", "top.txt"]
    assert f.get("top.txt", "r") == "plain text\n"
    with f.open("bin/new.bin", "wb") as out:
        out.write(b"\x00\xff")
    assert (tmp_path / "src" / "bin" / "new.bin").read_bytes() == b"\x00\xff"
    f.rm("bin/new.bin")
    copy = f.to("file", str(tmp_path / "copy"))
    _check_content(copy)
    assert copy.last_copy is not None and copy.last_copy.files_sent == len(CONTENT)
    # disk copies keep mtimes, so a second copy sends nothing
    assert f.to("file", str(tmp_path / "copy")).last_copy.files_sent == 0  # type: ignore[union-attr]
    moved = copy.mv(str(tmp_path / "moved"))
    assert not (tmp_path / "copy").exists() and moved.exists()
    moved.rm()
    assert not moved.exists()


def test_a_folder_saves_loads_and_rebuilds_from_its_config(tmp_path: Path, s3: S3Server) -> None:
    f = rh.folder("cfg-bucket/some/prefix", system=s3.store(), name="ds1")
    f.save()
    back = rh.folder(name="ds1")
    assert isinstance(back, rh.Folder) and back.path == "cfg-bucket/some/prefix"
    assert back.system.endpoint_url == s3.url
    # credentials are never part of a saved config
    text = str(back.config()) + repr(back) + repr(back.system)
    assert "testing-secret" not in text and "testing" not in text.replace("testing-secret", "")
    for make in (rh.file, rh.blob, rh.table):
        kind = make.__name__
        r = make(path=str(tmp_path / kind), name=f"saved-{kind}")  # type: ignore[operator]
        r.save()
        assert type(rh.Resource.load(f"saved-{kind}")) is type(r)
        assert rh.Resource.from_config(r.config()).path == r.path


def test_s3_round_trip_and_only_the_changed_file_travels(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = rh.folder(str(tmp_path / "src")).put(CONTENT)
    up = src.to(s3.store(), path=f"{bucket}/data")
    assert up.last_copy.files_sent == len(CONTENT)  # type: ignore[union-attr]
    _check_content(up)
    down = up.to("file", str(tmp_path / "down"))
    _check_content(down)
    inodes = {p: p.stat().st_ino for p in (tmp_path / "down").rglob("*") if p.is_file()}

    (tmp_path / "src" / "bin" / "zeros.bin").write_bytes(b"\x01" * 1000)  # same size, new bytes
    again = src.to(s3.store(), path=f"{bucket}/data")
    assert again.last_copy.files_sent == 1  # type: ignore[union-attr]
    assert again.last_copy.sent == ("bin/zeros.bin",)  # type: ignore[union-attr]
    down2 = up.to("file", str(tmp_path / "down"))
    assert down2.last_copy.sent == ("bin/zeros.bin",)  # type: ignore[union-attr]
    # and independently of the report: only that file was rewritten (a new inode)
    changed = [p for p, ino in inodes.items() if p.stat().st_ino != ino]
    assert changed == [tmp_path / "down" / "bin" / "zeros.bin"]
    assert (tmp_path / "down" / "bin" / "zeros.bin").read_bytes() == b"\x01" * 1000

    f = rh.file(f"{bucket}/data/top.txt", system=s3.store())
    assert f.exists() and f.read("r") == "plain text\n"
    local = f.to("file", str(tmp_path / "one" / "top.txt"))
    assert local.read() == b"plain text\n"
    up.rm(["deep"])
    assert "deep/" not in up.ls()


def test_an_interrupted_copy_resumes_where_it_stopped(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(60):
        (src / f"f{i:03d}.bin").write_bytes(os.urandom(256 * 1024))
    script = textwrap.dedent(
        f"""
        import rhzmq as rh
        rh.folder({str(src)!r}).to(rh.object_store("s3", endpoint_url={s3.url!r}),
                                   path="{bucket}/many", progress=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    dest = rh.folder(f"{bucket}/many", system=s3.store())
    deadline = time.monotonic() + 30
    there: list[str] = []
    while time.monotonic() < deadline:
        there = dest.ls(recursive=True) if dest.exists() else []
        if len(there) >= 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    there = dest.ls(recursive=True)
    assert 5 <= len(there) < 60, "the copy was not interrupted half-way"
    resumed = rh.folder(str(src)).to(s3.store(), path=f"{bucket}/many")
    report = resumed.last_copy
    assert report is not None
    assert report.files_skipped == len(there) and report.files_sent == 60 - len(there)
    assert dest.ls(recursive=True) == sorted(p.name for p in src.iterdir())
    assert dest.get("f059.bin") == (src / "f059.bin").read_bytes()


def test_a_progress_bar_shows_files_bytes_and_rate(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    src = rh.folder(str(tmp_path / "p")).put({f"x{i}": os.urandom(1 << 20) for i in range(3)})
    src.to("file", str(tmp_path / "q"), progress=True)
    err = capfd.readouterr().err
    assert "3/3 files" in err and "3.0 MiB/3.0 MiB" in err and "/s" in err


def test_blobs_hold_objects_on_disk_and_s3(tmp_path: Path, s3: S3Server, bucket: str) -> None:
    import numpy as np

    value = {"w": np.arange(100_000, dtype=np.float32), "meta": ("x", 1)}
    b = rh.blob(value, path=str(tmp_path / "b1")).write()
    got = b.fetch()
    assert np.array_equal(got["w"], value["w"]) and got["meta"] == ("x", 1)
    on_s3 = b.to(s3.store(), f"{bucket}/blobs/b1")
    assert np.array_equal(
        rh.blob(path=f"{bucket}/blobs/b1", system=s3.store()).fetch()["w"], value["w"]
    )
    on_s3.rm()
    assert not on_s3.exists()


# -- errors ----------------------------------------------------------------------------------


def test_a_missing_path_is_a_data_not_found_naming_it(tmp_path: Path) -> None:
    missing = rh.folder(str(tmp_path / "nope"))
    with pytest.raises(rh.DataNotFound, match=r"no folder .*nope"):
        missing.ls()
    with pytest.raises(FileNotFoundError):  # also the builtin
        missing.to("file", str(tmp_path / "elsewhere"))
    f = rh.folder(str(tmp_path)).put({"a": b"1"})
    with pytest.raises(rh.DataNotFound, match="no-such-file"):
        f.get("no-such-file")


def test_no_credentials_names_every_place_looked_in(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(rh.NoCredentials, match=r"AWS_ACCESS_KEY_ID.*credentials"):
        rh.folder("any-bucket", system=s3.store()).ls()
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = filekey\naws_secret_access_key = filesecret\n"
    )
    assert rh.folder("any-bucket", system=s3.store()).system.credentials()["key"] == "filekey"


def test_an_absent_bucket_is_named_with_the_fix(s3: S3Server, tmp_path: Path) -> None:
    with pytest.raises(rh.DataNotFound, match=r"bucket 'never-made' does not exist.*mkdir"):
        rh.folder("never-made/x", system=s3.store()).put({"a": b"1"})
    with pytest.raises(rh.DataNotFound, match="never-made"):
        rh.folder(str(tmp_path)).put({"a": b"1"}).to(s3.store(), path="never-made/x")


def test_refused_credentials_are_a_permission_error(tmp_path: Path) -> None:
    # moto checking credentials after two requests (mkdir: a HEAD, then the PUT making the bucket)
    server = start_moto(tmp_path / "moto-auth.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "2"})
    try:
        rh.folder("locked", system=server.store()).mkdir()
        stranger = rh.object_store("s3", endpoint_url=server.url, key="AKIASTRANGER", secret="x")
        with pytest.raises(rh.DataPermissionError, match="refused") as info:
            rh.folder("locked/x", system=stranger).put({"a": b"1"})
        assert isinstance(info.value, PermissionError)
        assert "AKIASTRANGER" not in repr(stranger) and "x" not in str(stranger.config())
    finally:
        stop(server.proc)
