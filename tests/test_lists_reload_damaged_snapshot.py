"""A running serve's lists reload that finds a list's snapshot damaged keeps the list in force when that is of a
later generation than the `.prev` a load falls back to.

It swapped the previous generation in: a registry whose newest snapshot was damaged on disk (a bad restore, a
disk error) lost, in the running serve, every registration of its last import or add (34 senders -> 33 live,
SENDER_ID_UNREGISTERED for the brand added last), with a WARNING saying "using previous good snapshot". A start
has nothing newer and still falls back; so does the DNC (its journal lines are applied again from
dnc.delta.prev)."""
from __future__ import annotations

import asyncio
import os

from engine.app import build
from engine.lists import ListStore
from engine.serve import reload_lists

from .test_lists_reload_cost import _unfrozen  # noqa: F401  (autouse: what a reload froze goes back to the collector)

HEAD = b"sender,owner,category,valid_from,valid_to,accounts\n"


def _damage(path):
    tmp = path.with_name(path.name + ".damaged")
    tmp.write_bytes(b"\0" * 64)
    os.replace(tmp, path)           # (as a restore would put it: another file; the same seen copied over in place)


def test_a_damaged_newest_registry_snapshot_keeps_the_registry_in_force(tmp_path, caplog):
    d = tmp_path / "d"
    store = ListStore(d)
    store.import_csv("senders", HEAD + b"BR1,Owner,QC,,,\n")
    store.import_csv("blacklist", b"kind,value\ndomain,aaa.example\n")
    pipe = build(None, d, with_model=False, seed=False)
    store.add("senders", "BR2", extra=["Other", "QC"])   # the newest generation; .prev has BR1 alone
    assert asyncio.run(reload_lists(pipe)) is None
    assert set(pipe.lists.senders) == {"br1", "br2"}
    in_force = pipe.lists.senders
    _damage(store.path("senders"))
    with caplog.at_level("INFO"):
        assert asyncio.run(reload_lists(pipe)) is None
    assert pipe.lists.senders is in_force and set(pipe.lists.senders) == {"br1", "br2"}
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"{store.path('senders')}: refusing snapshot: ") and "the list in force, of a later "
               "generation than the previous one there, is kept" in m for m in said), said
    assert not any("using previous good snapshot" in m for m in said), said
    assert pipe.lists_reloads["last_kept"] == ["dnc", "senders", "blacklist", "consent", "mlexempt"]


def test_a_start_on_a_damaged_snapshot_still_falls_back(tmp_path):
    d = tmp_path / "d"
    store = ListStore(d)
    store.import_csv("senders", HEAD + b"BR1,Owner,QC,,,\n")
    store.add("senders", "BR2", extra=["Other", "QC"])
    _damage(store.path("senders"))
    pipe = build(None, d, with_model=False, seed=False)
    assert set(pipe.lists.senders) == {"br1"}       # nothing newer to keep: the previous generation
    assert asyncio.run(reload_lists(pipe)) is None  # and a reload then has nothing newer in force either
    assert set(pipe.lists.senders) == {"br1"}
