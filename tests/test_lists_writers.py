"""The DNC journal and the offline writers: nothing a subscriber registered is lost, whatever
the CLI does at the same time; a refused import changes nothing; a bad snapshot never stops us."""
import json
import multiprocessing

import msgpack
import pytest

from engine.lists import ImportRefused, ListStore, SnapshotError
from engine.lists.snapshot import write_snapshot

from .conftest import CONFIG, run_cli


def _dnc(store):
    L = store.load()
    return set(L.dnc_s), set(L.dnc_v)


def test_lines_appended_after_the_writer_read_stay(data_dir):
    store = ListStore(data_dir)
    store.import_csv("dnc", b"number,channel\n0912000001,S\n")
    store.append_delta("add", 84900000001, "S")
    L = store.load()                                  # the writer has read the journal ...
    store.append_delta("add", 84900000002, "S")       # ... serve appends meanwhile ...
    L.add_dnc(84912000003, "S")
    store.save(L, ("dnc",))                           # ... the writer installs its snapshot
    s, _ = _dnc(store)
    assert {84912000001, 84900000001, 84900000002, 84912000003} <= s


def test_crash_between_snapshot_and_journal_rewrite_applies_nothing_twice(data_dir, monkeypatch):
    store = ListStore(data_dir)
    store.append_delta("add", 84900000001, "S")
    import engine.lists.store as lists_mod

    def crash(*a, **k):
        raise SystemExit("power cut")
    monkeypatch.setattr(lists_mod, "replace_with_tail", crash)
    with pytest.raises(SystemExit):
        store.remove("dnc", "84900000001", "S")       # snapshot installed, journal not yet rewritten
    monkeypatch.undo()
    assert b"84900000001" in store.delta_path.read_bytes()
    s, _ = _dnc(store)
    assert 84900000001 not in s                       # the journal's old "add" is not replayed
    store.append_delta("add", 84900000009, "S")
    store.add("dnc", "0912000000", "V")
    s, v = _dnc(store)
    assert 84900000009 in s and 84900000001 not in s and 84912000000 in v


def test_unreadable_journal_lines_are_reported_and_kept(data_dir):
    store = ListStore(data_dir)
    store.append_delta("add", 84900000001, "S")
    with open(store.delta_path, "ab") as f:
        f.write(b'{"op": "add", "number": "x"}\n')
    store.append_delta("add", 84900000002, "S")
    r = run_cli("lists", "add", "dnc", "0912000000", "--data-dir", data_dir)
    assert r.returncode == 0, r.stderr
    assert "dnc.delta:2: unreadable" in r.stderr
    rejected = data_dir / "lists" / "dnc.delta.rejected"
    assert rejected.read_bytes() == b'{"op": "add", "number": "x"}\n'
    s, _ = _dnc(store)
    assert {84900000001, 84900000002, 84912000000} <= s
    assert not store.load() or not store.warnings       # reported once, not on every load after


def _send_mos(config, data_dir, n, go):
    from engine.app import build
    from engine.verdict import Message
    from datetime import datetime, timezone
    pipe = build(config, data_dir, with_model=False)
    go.wait()
    for i in range(n):
        v = pipe.judge(Message(f"09130{i:05d}", "5656", "DK DNC", datetime.now(timezone.utc), "", "mo"))
        assert v.hits[0].symbol == "DNC_REGISTERED", v.hits


def test_dnc_registrations_racing_with_imports_are_all_kept(data_dir, tmp_path):
    """200 subscribers send DK DNC through the pipeline (as serve does) while an operator
    imports a DNC file again and again: all 200 end on the list. (A --replace import
    replaces what was folded in before it read the journal, by design; what is appended
    after that read survives it: test_lines_appended_after_the_writer_read_stay.)"""
    store = ListStore(data_dir)
    store.import_csv("dnc", b"number,channel\n0912000001,S\n")
    csv = tmp_path / "dnc.csv"
    csv.write_text("number,channel\n" + "".join(f"09140{i:05d},SV\n" for i in range(50)))
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    p = ctx.Process(target=_send_mos, args=(CONFIG, data_dir, 200, go))
    p.start()
    go.set()
    imports = 0
    while p.is_alive() or imports < 3:
        n, errors = store.import_csv("dnc", csv.read_bytes(), str(csv))
        assert n == 50 and not errors
        imports += 1
    p.join(30)
    assert p.exitcode == 0
    s, _ = _dnc(store)
    missing = [i for i in range(200) if 84913000000 + i not in s]
    assert not missing, f"{len(missing)} registrations lost after {imports} imports"
    L = store.load()
    store.save(L)                                     # and a final compaction keeps them too
    s, _ = _dnc(store)
    assert all(84913000000 + i in s for i in range(200))


@pytest.mark.parametrize("body", ["number,channel\nxx,S\nyy,V\n", "number,channel\n",
                                  "number,channel\n0912000002,S\nbad,S\n"])
def test_replace_with_errors_or_no_rows_changes_nothing(data_dir, tmp_path, body):
    store = ListStore(data_dir)
    store.import_csv("dnc", b"number,channel\n0912000001,S\n")
    before = (data_dir / "lists" / "dnc.snap").read_bytes()
    f = tmp_path / "new.csv"
    f.write_text(body)
    r = run_cli("lists", "import", "dnc", f, "--replace", "--data-dir", data_dir)
    assert r.returncode == 1 and "unchanged" in r.stderr and "--allow-partial" in r.stderr
    assert (data_dir / "lists" / "dnc.snap").read_bytes() == before
    with pytest.raises(ImportRefused):
        store.import_csv("dnc", body.encode(), replace=True)
    r = run_cli("lists", "import", "dnc", f, "--replace", "--allow-partial", "--data-dir", data_dir)
    s, _ = _dnc(store)
    assert 84912000001 not in s and (84912000002 in s) == ("0912000002" in body)


def test_snapshot_with_good_crc_but_bad_contents_falls_back(data_dir, tmp_path):
    store = ListStore(data_dir)
    store.import_csv("dnc", b"number,channel\n0912000001,S\n")
    store.import_csv("dnc", b"number,channel\n0912000002,S\n")
    store.import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nSHOP,Shop,QC,,,\n")
    store.import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nSHOP2,Shop,QC,,,\n")
    write_snapshot(store.path("dnc"), "dnc", {"S": b"not a bitmap", "V": b""})
    write_snapshot(store.path("senders"), "senders", {"rows": msgpack.packb([["only", "two"]])})
    with pytest.raises(SnapshotError):
        store.load(strict=True)
    L = store.load()
    assert 84912000001 in L.dnc_s and len(store.warnings) == 2
    # serve starts on the previous generation (here: `check`, which builds the same pipeline)
    r = run_cli("check", "--data-dir", data_dir, "--sender", "A", "--recipient", "0912000001", "--text", "hi")
    assert r.returncode == 0 and "previous good snapshot" in r.stderr, r.stderr


def test_catch_up_applies_lines_appended_during_a_reload(data_dir):
    store = ListStore(data_dir)
    store.append_delta("add", 84900000001, "S")
    L = ListStore(data_dir).load()                    # serve's background reload ...
    store.append_delta("add", 84900000002, "S")       # ... while the loop journals a registration
    store.catch_up(L)                                 # then, on the loop, before the swap
    assert {84900000001, 84900000002} <= set(L.dnc_s)
    store.catch_up(L)
    store.append_delta("remove", 84900000001, "S")
    store.catch_up(L)
    assert 84900000001 not in L.dnc_s and 84900000002 in L.dnc_s


def test_serve_side_compaction_is_bounded_and_never_waits(data_dir):
    store = ListStore(data_dir)
    store.import_csv("dnc", b"number,channel\n0912000001,S\n")
    for i in range(50):
        store.append_delta("add", 84900000000 + i, "S")
    assert not store.compact_journal(min_bytes=1 << 20)          # small journal: left alone
    from engine.lists.journal import flocked
    with flocked(store.write_lock):                              # an operator's import at work
        assert not ListStore(data_dir).compact_journal(min_bytes=1)
    assert store.compact_journal(min_bytes=1)
    assert store.delta_path.stat().st_size < 40                  # only the generation header left
    s, _ = _dnc(store)
    assert {84912000001} | {84900000000 + i for i in range(50)} <= s


def test_allow_partial_without_replace_is_an_error(data_dir, tmp_path):
    f = tmp_path / "new.csv"
    f.write_text("number,channel\n0912000002,S\nbad,S\n")
    r = run_cli("lists", "import", "dnc", f, "--allow-partial", "--data-dir", data_dir)
    assert r.returncode == 2 and "--allow-partial only applies with --replace" in r.stderr
    assert 84912000002 not in _dnc(ListStore(data_dir))[0]          # nothing imported


def test_a_load_while_a_writer_folds_the_journal_misses_no_registration(data_dir, monkeypatch):
    """A load reads the dnc snapshot, then the other kinds, then the journal (under its lock): a writer that
    installed a new dnc snapshot and rewrote the journal in between (it folded the journal's lines into the new
    snapshot) left the load with the old snapshot and the new journal's tail -- the registrations folded were
    in neither (serve's reload ran without them until its next reload; a CLI load lost them). The load now
    sees the dnc snapshot changed under it and reads again."""
    store = ListStore(data_dir)
    store.import_csv("dnc", b"number,channel\n0912000001,S\n")
    store.append_delta("add", 84900000001, "S")            # a 5656 registration, in the journal only
    L, folded = _load_folded_under(data_dir, monkeypatch)
    assert folded and b"84900000001" not in store.delta_path.read_bytes()     # folded: in the new snapshot only
    assert {84912000001, 84900000001} <= set(L.dnc_s)
    assert L.journal_mark[0] == json.loads(store.delta_path.read_bytes().splitlines()[0])["gen"]


def test_a_load_while_a_writer_folds_the_journal_into_the_first_dnc_snapshot_misses_no_registration(data_dir,
                                                                                                    monkeypatch):
    """The same with no dnc snapshot yet (a new data dir whose DNC so far is 5656 registrations, the journal's
    lines alone): the load found no snapshot, a writer folded the journal into the first one, and the load read the
    new journal's tail -- the registrations in neither. No snapshot read is checked as a snapshot read is."""
    store = ListStore(data_dir)
    store.append_delta("add", 84900000001, "S")            # a 5656 registration, in the journal only
    assert not store.path("dnc").exists()
    L, folded = _load_folded_under(data_dir, monkeypatch)
    assert folded and store.path("dnc").exists() and b"84900000001" not in store.delta_path.read_bytes()
    assert 84900000001 in set(L.dnc_s)


def _load_folded_under(data_dir, monkeypatch):
    """A load of `data_dir` during which, between the dnc snapshot (or none) and the journal, another writer folds
    the journal into a new dnc snapshot (`lists add`). (the load, [True] once folded)"""
    reader = ListStore(data_dir)
    real = reader._load_kind
    folded = []

    def load_kind(kind, L, strict):
        extra = real(kind, L, strict)
        if kind == "dnc" and not folded:
            w = ListStore(data_dir)
            w.save(w.load(), ("dnc",))
            folded.append(True)
        return extra
    monkeypatch.setattr(reader, "_load_kind", load_kind)
    return reader.load(), folded
