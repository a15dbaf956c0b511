"""The registry end to end: real servers (SQLite and PostgreSQL), real clients, two users.

Each test runs once per database (the ``den`` fixture). Names come from ``den.name()`` so the
tests share one server per database without meeting each other's resources.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import pytest
from conftest import DenServer, run_client

import rhzmq as rh


def test_alice_saves_and_shares_bob_loads_it_in_his_own_process(den: DenServer) -> None:
    alice, a = den.user("alice")
    bob, _ = den.user("bob")
    bob_token = den.tokens[-1]
    path = f"/{alice}/train-env"
    meta = a.save(path, "env", {"reqs": ["numpy"], "env_vars": {"A": "1"}})
    assert (meta["version"], meta["author"], meta["access"]) == (1, alice, "manage")
    # Unshared, bob's process cannot even see it.
    seen = run_client(
        den,
        bob_token,
        f"try:\n    den.load({path!r})\n    out('loaded')\n"
        "except rh.ResourceNotFound as e:\n    out(['404', str(e)])\n",
    )
    assert seen[0] == "404" and path in seen[1]
    assert a.share(path, [bob], "read") == [
        {
            "principal": bob,
            "access_level": "read",
            "granted_by": alice,
            "created_at": a.shared_with(path)[0]["created_at"],
        }
    ]
    got = run_client(
        den,
        bob_token,
        f"config, meta = den.load({path!r})\n"
        "out({'config': config, 'version': meta['version'], 'access': meta['access'],\n"
        "     'shared': [r['name'] for r in den.list(shared=True)]})\n",
    )
    assert got == {
        "config": {"reqs": ["numpy"], "env_vars": {"A": "1"}},
        "version": 1,
        "access": "read",
        "shared": [path],
    }
    # A read share cannot save, delete, share or roll back: 403 (AccessDenied is also a
    # PermissionDenied), and nothing changed.
    refused = run_client(
        den,
        bob_token,
        f"config, meta = den.load({path!r})\n"
        "errors = []\n"
        "for attempt in (\n"
        f"    lambda: den.save({path!r}, 'env', {{'reqs': []}}, etag=meta['etag']),\n"
        f"    lambda: den.delete({path!r}),\n"
        f"    lambda: den.share({path!r}, ['{bob}'], 'write'),\n"
        f"    lambda: den.rollback({path!r}, 1),\n"
        "):\n"
        "    try:\n"
        "        attempt()\n"
        "        errors.append('allowed')\n"
        "    except rh.PermissionDenied as e:\n"
        "        errors.append([type(e).__name__, e.status])\n"
        "out(errors)\n",
    )
    assert refused == [["AccessDenied", 403]] * 4
    assert a.load(path)[1]["version"] == 1
    # Revocation takes effect at the very next request.
    a.revoke(path, bob)
    assert a.shared_with(path) == []
    gone = run_client(
        den,
        bob_token,
        f"try:\n    den.load({path!r})\n    out('loaded')\nexcept rh.ResourceNotFound:\n"
        "    out([r['name'] for r in den.list(shared=True)])\n",
    )
    assert gone == []


def test_a_write_share_saves_but_only_the_owner_deletes_and_shares(den: DenServer) -> None:
    alice, a = den.user("alice")
    bob, b = den.user("bob")
    carol, _ = den.user("carol")
    path = f"/{alice}/fn"
    a.save(path, "function", {"code": "v1"})
    a.share(path, [bob], "write")
    _config, meta = b.load(path)
    assert meta["access"] == "write"
    saved = b.save(path, "function", {"code": "v2"}, etag=meta["etag"])
    assert (saved["version"], saved["author"]) == (2, bob)
    with pytest.raises(rh.AccessDenied, match="manage"):
        b.delete(path)
    with pytest.raises(rh.AccessDenied):
        b.share(path, [carol])
    with pytest.raises(rh.AccessDenied):
        b.audit(path)
    # Bob cannot create under alice's name either, whatever she shared with him.
    with pytest.raises(rh.AccessDenied, match="another user"):
        b.save(f"/{alice}/new", "function", {})
    a.delete(path)
    with pytest.raises(rh.ResourceNotFound):
        b.load(path)


def test_rollback_restores_an_old_config_as_a_new_version(den: DenServer) -> None:
    alice, a = den.user("alice")
    path = f"/{alice}/cluster"
    etag = a.save(path, "cluster", {"instance_type": "small", "autostop_mins": 30})["etag"]
    etag = a.save(path, "cluster", {"instance_type": "large", "autostop_mins": 30}, etag=etag)[
        "etag"
    ]
    a.save(path, "cluster", {"instance_type": "huge"}, etag=etag)
    back = a.rollback(path, 1)
    assert back["version"] == 4 and back["rollback_of"] == 1
    config, meta = a.load(path)
    assert config == {"instance_type": "small", "autostop_mins": 30}
    assert meta["content_hash"] == a.load(path, version=1)[1]["content_hash"]
    assert meta["etag"] != a.load(path, version=1)[1]["etag"]  # a new version, not the old one
    history = a.history(path)
    assert [(h["version"], h["rollback_of"], h["author"]) for h in history] == [
        (4, 1, alice),
        (3, None, alice),
        (2, None, alice),
        (1, None, alice),
    ]
    assert a.load(path, version=3)[0] == {"instance_type": "huge"}  # history keeps everything
    with pytest.raises(rh.ResourceNotFound, match="no version 9"):
        a.rollback(path, 9)
    with pytest.raises(rh.StaleWrite):
        a.rollback(path, 2, etag=history[1]["etag"])  # a stale ETag stops a rollback too


def test_etags_refuse_stale_and_blind_writes(den: DenServer) -> None:
    alice, a = den.user("alice")
    path = f"/{alice}/env"
    first = a.save(path, "env", {"reqs": ["a"]}, create_only=True)
    with pytest.raises(rh.StaleWrite, match="If-Match") as blind:
        a.save(path, "env", {"reqs": ["b"]})  # no ETag over an existing resource: 428
    assert blind.value.status == 428 and blind.value.etag == first["etag"]
    with pytest.raises(rh.StaleWrite) as created:
        a.save(path, "env", {"reqs": ["b"]}, create_only=True)
    assert created.value.status == 412
    second = a.save(path, "env", {"reqs": ["b"]}, etag=first["etag"])
    with pytest.raises(rh.StaleWrite, match=f"saved by {alice}") as stale:
        a.save(path, "env", {"reqs": ["c"]}, etag=first["etag"])
    assert stale.value.status == 412 and stale.value.etag == second["etag"]
    with pytest.raises(rh.StaleWrite):
        a.delete(path, etag=first["etag"])
    with pytest.raises(rh.StaleWrite):
        a.save(f"/{alice}/never-made", "env", {}, etag=first["etag"])
    assert a.load(path)[0] == {"reqs": ["b"]}


def test_concurrent_saves_with_one_etag_let_exactly_one_through(den: DenServer) -> None:
    alice, a = den.user("alice")
    path = f"/{alice}/race"
    etag = a.save(path, "run", {"n": 0})["etag"]
    clients = [den.client(den.tokens[-1]) for _ in range(4)]
    for round_ in range(5):
        results = _race(
            [
                partial(c.save, path, "run", {"n": round_, "writer": i}, etag=etag)
                for i, c in enumerate(clients)
            ]
        )
        assert sorted(results) == ["saved", "stale", "stale", "stale"]
        config, meta = a.load(path)
        assert meta["version"] == round_ + 2 and config["n"] == round_
        etag = meta["etag"]


def _race(saves: list[Callable[[], object]]) -> list[str]:
    """Run the saves at once (threads released together); 'saved' or 'stale' for each."""
    barrier = threading.Barrier(len(saves))
    results: list[str] = []

    def run(save: Callable[[], object]) -> None:
        barrier.wait()
        try:
            save()
            results.append("saved")
        except rh.StaleWrite:
            results.append("stale")

    threads = [threading.Thread(target=run, args=(save,)) for save in saves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_one_name_holds_one_type(den: DenServer) -> None:
    alice, a = den.user("alice")
    path = f"/{alice}/thing"
    meta = a.save(path, "env", {})
    with pytest.raises(rh.Conflict, match="is a env; it cannot hold a function"):
        a.save(path, "function", {}, etag=meta["etag"])
    a.delete(path)
    assert a.save(path, "function", {})["type"] == "function"  # free again once deleted


def test_nested_groups_membership_counts_upwards_admin_downwards(den: DenServer) -> None:
    alice, a = den.user("alice")
    bob, b = den.user("bob")
    carol, c = den.user("carol")
    org, team = den.name("acme"), den.name("ml")
    a.create_group(org)
    a.create_group(team, parent=org)
    a.add_member(team, bob)
    a.add_member(org, carol)
    assert {g["name"]: g["role"] for g in b.whoami()["groups"]} == {org: "member", team: "member"}
    # bob, in the subgroup, counts as a member of the org: he writes its resources...
    meta = b.save(f"/{org}/shared-cluster", "cluster", {"instance_type": "small"})
    assert meta["access"] == "write"
    etag = c.load(f"/{org}/shared-cluster")[1]["etag"]
    c.save(f"/{org}/shared-cluster", "cluster", {"instance_type": "big"}, etag=etag)
    # ...but a plain member deletes nothing; carol (org only) does not see the team's.
    with pytest.raises(rh.AccessDenied):
        b.delete(f"/{org}/shared-cluster")
    b.save(f"/{team}/model", "module", {"layers": 3})
    with pytest.raises(rh.ResourceNotFound):
        c.load(f"/{team}/model")
    with pytest.raises(rh.AccessDenied, match="not a member"):
        c.save(f"/{team}/other", "module", {})
    # alice, admin of the org, administers the team and all it holds.
    assert a.load(f"/{team}/model")[1]["access"] == "manage"
    a.share(f"/{team}/model", [carol])
    assert c.load(f"/{team}/model")[0] == {"layers": 3}
    a.delete(f"/{team}/model")
    a.delete(f"/{org}/shared-cluster")
    # Members manage no membership; admins do.
    with pytest.raises(rh.AccessDenied):
        b.add_member(team, carol)
    a.remove_member(team, bob)
    with pytest.raises(rh.AccessDenied):
        b.save(f"/{org}/after", "env", {})
    with pytest.raises(rh.Conflict, match="no admin left"):
        a.remove_member(org, alice)


def test_group_shares_reach_members_of_subgroups(den: DenServer) -> None:
    alice, a = den.user("alice")
    bob, b = den.user("bob")
    org, team = den.name("corp"), den.name("research")
    b.create_group(org)
    b.create_group(team, parent=org)
    b.add_member(team, bob, role="member")  # bob is admin of the org, and a member here
    carol, c = den.user("carol")
    b.add_member(team, carol)
    path = f"/{alice}/dataset"
    a.save(path, "table", {"rows": 10})
    a.share(path, [f"@{org}"], "read")
    assert c.load(path)[1]["access"] == "read"  # carol: team member, so an org member
    assert a.shared_with(path)[0]["principal"] == f"@{org}"
    with pytest.raises(rh.RegistryError, match="is a group: write it as"):
        a.share(path, [org])
    a.revoke(path, f"@{org}")
    with pytest.raises(rh.ResourceNotFound):
        c.load(path)


def test_group_defaults_fill_what_a_config_lacks(den: DenServer) -> None:
    _alice, a = den.user("alice")
    org, team = den.name("acme"), den.name("gpu")
    a.create_group(org, defaults={"provider": "aws", "autostop_mins": 60, "folder": "/acme/data"})
    group = a.create_group(team, parent=org, defaults={"autostop_mins": 10})
    assert group["effective_defaults"] == {
        "provider": "aws",
        "autostop_mins": 10,
        "folder": "/acme/data",
    }
    path = f"/{team}/box"
    a.save(path, "cluster", {"instance_type": "A100", "provider": "gcp"})
    config, meta = a.load(path)
    assert config == {
        "instance_type": "A100",
        "provider": "gcp",  # the config's own value wins
        "autostop_mins": 10,  # the nearest group's default
        "folder": "/acme/data",  # inherited from the parent
    }
    assert meta["defaults"] == {"autostop_mins": 10, "folder": "/acme/data"}
    raw, _ = a.load(path, raw=True)
    assert raw == {"instance_type": "A100", "provider": "gcp"}  # stored (and hashed) as saved
    a.set_group_defaults(team, {})
    assert a.load(path)[0]["autostop_mins"] == 60  # defaults apply at read time
    bob, b = den.user("bob")
    a.add_member(org, bob)
    with pytest.raises(rh.AccessDenied, match="not an admin"):
        b.set_group_defaults(org, {"provider": "azure"})
    b.save(f"/{bob}/mine", "cluster", {})
    assert b.load(f"/{bob}/mine")[1]["defaults"] == {}  # a user's own: no group defaults


def test_lineage_names_the_versions_a_version_came_from(den: DenServer) -> None:
    alice, a = den.user("alice")
    bob, b = den.user("bob")
    cluster = a.save(f"/{alice}/c", "cluster", {"ips": ["10.0.0.1"]})
    env = a.save(f"/{alice}/e", "env", {"reqs": []})
    fn = a.save(
        f"/{alice}/f",
        "function",
        {"entry": "m:f"},
        lineage=[(f"/{alice}/c", cluster["version"]), (f"/{alice}/e", env["version"])],
    )
    assert fn["lineage"] == [
        {"name": f"/{alice}/c", "version": 1},
        {"name": f"/{alice}/e", "version": 1},
    ]
    with pytest.raises(rh.RegistryError, match="no version 5") as bad:
        a.save(f"/{alice}/g", "function", {}, lineage=[(f"/{alice}/c", 5)])
    assert bad.value.status == 422
    with pytest.raises(rh.ResourceNotFound):  # lineage only from what the saver may read
        b.save(f"/{bob}/g", "function", {}, lineage=[(f"/{alice}/c", 1)])


def test_listing_filters_and_pages(den: DenServer) -> None:
    alice, a = den.user("alice")
    _bob, b = den.user("bob")
    for i in range(5):
        a.save(f"/{alice}/item{i}", "blob" if i % 2 else "file", {"i": i})
    mine = a.list(owner=alice)
    assert [r["name"] for r in mine] == [f"/{alice}/item{i}" for i in range(5)]
    assert [r["name"] for r in a.list(owner=alice, type="blob")] == [
        f"/{alice}/item1",
        f"/{alice}/item3",
    ]
    assert [r["name"] for r in a.list(owner=alice, q="ITEM4")] == [f"/{alice}/item4"]
    assert b.list(owner=alice) == []
    # Pages of two, by cursor, cover everything once.
    raw = a._http  # the client's own session: same token, same URL
    names: list[str] = []
    cursor = None
    while True:
        params = {"owner": alice, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = raw.get("/resources", params=params).json()
        assert len(page["items"]) <= 2
        names += [r["name"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == [r["name"] for r in mine]
    assert raw.get("/resources", params={"limit": 10_000}).status_code == 200  # capped, not refused
    assert raw.get("/resources", params={"limit": 0}).status_code == 400


def test_audit_records_reads_and_writes(den: DenServer) -> None:
    alice, a = den.user("alice")
    bob, b = den.user("bob")
    path = f"/{alice}/secretish"
    meta = a.save(path, "secret", {"ref": "vault://x"})
    a.share(path, [bob])
    b.load(path)
    a.save(path, "secret", {"ref": "vault://y"}, etag=meta["etag"])
    a.revoke(path, bob)
    log = a.audit(path)
    assert [(e["actor"], e["action"], e["version"]) for e in log] == [
        (alice, "revoke", None),
        (alice, "save", 2),
        (bob, "read", 1),
        (alice, "share", None),
        (alice, "create", 1),
    ]
    assert log[3]["detail"] == {"with": bob, "access": "read"}


def test_only_server_admins_make_users(den: DenServer) -> None:
    bob, b = den.user("bob")
    with pytest.raises(rh.AccessDenied, match="server admin"):
        b.create_user(den.name("mallory"))
    _name, c = den.user("ops", admin=True)
    assert c.whoami()["admin"] is True
    made = c.create_user(den.name("dave"))
    den.tokens.append(made["token"])
    with pytest.raises(rh.Conflict, match="taken"):
        c.create_user(bob)
    org = den.name("team")
    b.create_group(org)
    with pytest.raises(rh.Conflict, match="one namespace"):
        c.create_user(org)


def test_names_without_an_owner_are_the_users_own(den: DenServer) -> None:
    alice, a = den.user("alice")
    a.save("plain", "folder", {"path": "/data"})
    assert a.load(f"/{alice}/plain")[1]["name"] == f"/{alice}/plain"
    assert a.load("@/plain")[0] == a.load(f"{alice}/plain")[0] == {"path": "/data"}
    for bad in ("", "/", "/a/b/c", "a//b"):
        with pytest.raises(ValueError):
            a.load(bad)
    with pytest.raises(rh.RegistryError) as err:
        a.load(f"/{alice}/bad name")
    assert err.value.status == 400
