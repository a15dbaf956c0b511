"""Folders, files, blobs and tables on Azure Blob Storage: Azurite (Microsoft's emulator, a real
server on loopback) reached through libcloud's Azure Blobs driver, the account found where the
Azure tools look for it (AZURE_STORAGE_CONNECTION_STRING) or given explicitly."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest
from azurite import ACCOUNT, KEY, Azurite

import rhzmq as rh

CONTENT = {
    "top.txt": "plain text\n",
    "bin/zeros.bin": bytes(1000),
    "bin/all-bytes.bin": bytes(range(256)) * 40,
    "deep/er/still/ünï cödé ✓.txt": "unicode names and content: ✓ ü 日本\n",
    "obj.pkl": {"a": [1, 2, 3]},
}


def _check(folder: rh.Folder) -> None:
    assert folder.ls(recursive=True) == sorted(CONTENT)
    for name, value in CONTENT.items():
        got = folder.get(name)
        if isinstance(value, dict):
            assert pickle.loads(got) == value
        else:
            assert got == (value if isinstance(value, bytes) else value.encode()), name


def test_a_folder_round_trips_and_only_the_changed_file_travels(
    tmp_path: Path, azure_env: Azurite
) -> None:
    rh.folder("roundtrip", system="azure").mkdir()  # the container, as for a bucket
    src = rh.folder(str(tmp_path / "src")).put(CONTENT)
    up = src.to("azure", path="roundtrip/data")
    assert up.system.endpoint_url == azure_env.url  # from the connection string's BlobEndpoint
    assert up.last_copy is not None and up.last_copy.files_sent == len(CONTENT)
    _check(up)
    assert up.ls() == ["bin/", "deep/", "obj.pkl", "top.txt"]
    down = up.to("file", str(tmp_path / "down"))
    _check(down)
    inodes = {p: p.stat().st_ino for p in (tmp_path / "down").rglob("*") if p.is_file()}

    # Same size, new bytes: only Content-MD5 tells (Azure's ETag is no hash of the content).
    (tmp_path / "src" / "bin" / "zeros.bin").write_bytes(b"\x01" * 1000)
    again = src.to("azure", path="roundtrip/data")
    assert again.last_copy is not None and again.last_copy.sent == ("bin/zeros.bin",)
    down2 = up.to("file", str(tmp_path / "down"))
    assert down2.last_copy is not None and down2.last_copy.sent == ("bin/zeros.bin",)
    changed = [p for p, ino in inodes.items() if p.stat().st_ino != ino]
    assert changed == [tmp_path / "down" / "bin" / "zeros.bin"]

    f = rh.file("roundtrip/data/top.txt", system="azure")
    assert f.exists() and f.read("r") == "plain text\n"
    with up.open("bin/new.bin", "wb") as out:
        out.write(b"\x00\xff")
    assert up.get("bin/new.bin") == b"\x00\xff"
    up.rm(["deep", "bin/new.bin"])
    assert "deep/" not in up.ls() and "new.bin" not in up.ls(recursive=True)
    b = rh.blob({"w": list(range(10))}, path="roundtrip/blobs/b1", system="azure").write()
    assert rh.blob(path="roundtrip/blobs/b1", system="azure").fetch() == {"w": list(range(10))}
    b.rm()
    assert not b.exists()


def test_explicit_credentials_and_the_saved_config_keeps_none(
    tmp_path: Path, azurite: Azurite
) -> None:
    store = rh.object_store("azure", endpoint_url=azurite.url, key=ACCOUNT, secret=KEY)
    f = rh.folder("explicit/p", system=store, name="az-ds").mkdir().put({"a.txt": "x"})
    assert f.get("a.txt") == b"x"
    f.save()
    back = rh.folder(name="az-ds")
    assert back.system.endpoint_url == azurite.url and back.system.provider == "azure"
    assert KEY not in str(back.config()) + repr(back) + repr(store)


def test_a_table_is_written_partitioned_and_read_with_pushdown(
    tmp_path: Path, azure_env: Azurite
) -> None:
    df = pd.DataFrame({"k": ["a", "b", "c", "a"], "v": [1, 2, 3, 4]})
    t = rh.table(df, path="tables/t1", system="azure", partition_cols=["k"]).write()
    assert t.num_rows == 4 and set(t.schema.names) == {"k", "v"}
    assert sorted(t.fetch(filter=[("k", "=", "a")])["v"].to_pylist()) == [1, 4]
    assert [b.num_rows for b in t.stream(batch_size=1)] == [1, 1, 1, 1]
    local = t.to("file", str(tmp_path / "t1"))
    assert sorted(local.fetch(columns=["v"])["v"].to_pylist()) == [1, 2, 3, 4]
    back = local.to("azure", path="tables/t1-copy")
    assert back.count_rows(filter=[("v", ">", 1)]) == 3


# -- errors ----------------------------------------------------------------------------------


def test_an_absent_container_is_named_with_the_fix(tmp_path: Path, azure_env: Azurite) -> None:
    with pytest.raises(rh.DataNotFound, match=r"bucket 'never-made' does not exist.*mkdir"):
        rh.folder("never-made/x", system="azure").put({"a": b"1"})
    with pytest.raises(rh.DataNotFound, match="never-made"):
        rh.folder(str(tmp_path)).put({"a": b"1"}).to("azure", path="never-made/x")
    with pytest.raises(rh.DataNotFound):
        rh.table(path="never-made/t", system="azure").fetch()


def test_a_wrong_key_is_a_permission_error_and_none_names_every_place(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = rh.object_store(
        "azure", endpoint_url=azurite.url, key=ACCOUNT, secret="d3JvbmcKa2V5Cg=="
    )
    with pytest.raises(rh.DataPermissionError, match="refused") as info:
        rh.folder("anything/x", system=wrong).put({"a": b"1"})
    assert isinstance(info.value, PermissionError)
    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(rh.NoCredentials, match=r"AZURE_STORAGE_KEY.*CONNECTION_STRING"):
        rh.folder("anything", system=rh.object_store("azure", endpoint_url=azurite.url)).ls()
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    assert (
        rh.folder("anything", system=rh.object_store("azure", endpoint_url=azurite.url)).exists()
        is False
    )
