"""A lists reload whose DNC read is not whole -- its newest snapshot refused and `dnc.snap.prev` read instead, or its
files gone -- keeps the DNC list in force and publishes no difference: diffed against the lists in force, the
numbers a CLI import had added since `.prev` were published as removals to every node (and taken out here)."""
from __future__ import annotations

import asyncio
import logging
import os

import pytest

from engine.serve_reload import reload_lists
from engine.state.replication import DncReplicator

from .redis_state_helpers import _lists_node
from .test_lists_reload_cost import _unfrozen  # noqa: F401  (autouse: what a reload froze goes back to the collector)

OLD, NEW = 84912000001, 84912000002


def _published(rep) -> list:
    """What reloads published of the CLI's snapshots (the journalled changes' segments aside)."""
    return [(op, ch, sorted(b)) for seg in rep.out if not seg.j for op, ch, b in seg.runs()]


def _damage(p, how):
    if how == "truncated":
        raw = p.read_bytes()
        p.write_bytes(raw[:len(raw) // 2])
    elif how == "unreadable":
        os.chmod(p, 0)
    else:           # gone, and its previous generation with it (a wrong or emptied data dir)
        p.unlink()
        p.with_name(p.name + ".prev").unlink()


@pytest.mark.parametrize("how", ["truncated", "unreadable", "gone"])
def test_a_reload_that_cannot_read_the_dnc_whole_keeps_it_and_publishes_no_removal(tmp_path, caplog, monkeypatch, how):
    if how == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file of mode 000")
    P = _lists_node(tmp_path, "A")
    rep = P.replicator = DncReplicator("redis://127.0.0.1:1/0", P)       # nothing is published: no server needed
    monkeypatch.setattr(rep, "_soon", lambda: None)
    P.store.import_csv("dnc", b"number,channel\n0912000001,SV\n")
    P.lists = P.store.load()
    P.store.import_csv("dnc", b"number,channel\n0912000002,S\n")       # a CLI import beside serve
    assert asyncio.run(reload_lists(P)) is None
    assert _published(rep) == [("add", "S", [NEW])]
    rep.out.clear()
    P.store.append_delta("add", 84912000003, "V")                      # a 5656 DK DNC since
    P.lists.add_dnc(84912000003, "V")
    p = P.store.path("dnc")
    try:
        _damage(p, how)
        with caplog.at_level(logging.INFO, "telfilter"):
            said = []
            assert asyncio.run(reload_lists(P, warnings=said)) is None
        assert _published(rep) == []
        assert P.lists.in_dnc(NEW, "S") and P.lists.in_dnc(OLD, "V") and P.lists.in_dnc(84912000003, "V")
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("DNC list in force stays" in m and "dnc.snap" in m for m in errors), errors
        assert any("DNC list in force stays" in w for w in said), said
        P.store.append_delta("remove", OLD, "V")                       # the journal is still followed
        assert asyncio.run(reload_lists(P)) is None
        assert not P.lists.in_dnc(OLD, "V") and P.lists.in_dnc(NEW, "S")
        assert _published(rep) == []
    finally:
        if p.exists():
            os.chmod(p, 0o644)
    if how != "gone":       # the operator restores the snapshot and imports again: read, and its difference published
        os.replace(p.with_name(p.name + ".prev"), p)
    P.store.import_csv("dnc", b"number,channel\n0912000004,S\n", replace=True)
    assert asyncio.run(reload_lists(P)) is None
    assert P.lists.in_dnc(84912000004, "S") and not P.lists.in_dnc(NEW, "S")
    assert any(op == "remove" and ch == "S" and NEW in b for op, ch, b in _published(rep))
