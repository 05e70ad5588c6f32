"""An offline list change leaves an audit record (an auditor's walkthrough: `ctl lists` on a running serve was a
`"kind": "list"` line of the verdict log, but `telfilter lists add|remove|import` on the host left nothing: who
blacklisted a number, or removed a subscriber's DNC row, was lost). Each change saved is one line of
DATA/lists/changes.jsonl, the verdict log's list line's shape (lists/changes.py), `by` "cli uid N"; an import is one
line whatever its rows; a refused change writes none; `verdicts` shows it among the number's verdicts in time order
and `report` counts it."""
import datetime
import hashlib
import json
import os

from engine.lists import ListStore
from tests.conftest import run_cli

BY = f"cli uid {os.getuid()}" + (f" sudo {os.environ['SUDO_USER']}" if os.environ.get("SUDO_USER") else "")


def _lists(data, *args):
    return run_cli("lists", *args, "--data-dir", data)


def _records(data):
    p = data / "lists" / "changes.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_each_offline_change_saved_is_one_record_an_import_too(tmp_path):
    data = tmp_path / "d"
    r = _lists(data, "add", "dnc", "0912 000 777", "--channel", "S")
    assert r.returncode == 0, r.stderr
    r = _lists(data, "add", "blacklist", "spam.example")
    assert r.returncode == 0, r.stderr
    r = _lists(data, "remove", "dnc", "+84912000777")
    assert r.returncode == 0, r.stderr
    r = _lists(data, "remove", "dnc", "0912000888")                 # (not listed: recorded as ctl's, found false)
    assert r.returncode == 1, r.stderr
    big = tmp_path / "dnc.csv"
    big.write_text("number,channel\n" + "".join(f"09120{i:05d},SV\n" for i in range(2000)) + "bad,SV\n")
    r = _lists(data, "import", "dnc", big)
    assert r.returncode == 1 and json.loads(r.stdout)["imported"] == 2000, r.stderr        # (1 bad row)
    good = tmp_path / "bl.csv"
    good.write_text("kind,value\ndomain,a.example\nnumber,0987654321\n")
    r = _lists(data, "import", "blacklist", good, "--replace")
    assert r.returncode == 0, r.stderr
    got = _records(data)
    assert [(x["op"], x["list"], x["value"]) for x in got] == [
        ("add", "dnc", "0912 000 777"), ("add", "blacklist", "spam.example"), ("remove", "dnc", "+84912000777"),
        ("remove", "dnc", "0912000888"), ("import", "dnc", str(big)), ("replace", "blacklist", str(good))]
    assert all(x["kind"] == "list" and x["by"] == BY for x in got)
    assert all(a["ts"] <= b["ts"] for a, b in zip(got, got[1:]))
    add, bl, rm, nothing, imp, rep = got
    assert add["number"] == "+84912000777" and add["detail"] == "channel S" and "found" not in add
    assert "number" not in bl and "detail" not in bl
    assert rm["number"] == "+84912000777" and rm["detail"] == "channel SV" and "found" not in rm
    assert nothing["found"] is False
    sha = hashlib.sha256(big.read_bytes()).hexdigest()                 # (which file, whatever its name)
    assert imp["detail"] == f"imported 2000 bad_rows 1 sha256 {sha}" and "number" not in imp   # one line, 2000 rows
    assert rep["detail"] == f"imported 2 bad_rows 0 sha256 {hashlib.sha256(good.read_bytes()).hexdigest()}"
    assert set(add) == {"ts", "kind", "op", "list", "value", "number", "detail", "by"}


def test_an_mlexempt_import_says_the_expired_rows_that_left(tmp_path):
    data = tmp_path / "d"
    today = datetime.date.today()
    past = ListStore(data)
    past.today = lambda: today - datetime.timedelta(days=30)          # a row added then, lapsed since
    past.add("mlexempt", "0912000111", "SV", [(today - datetime.timedelta(days=10)).isoformat(), "old"])
    f = tmp_path / "ml.csv"
    f.write_text(f"number,valid_to,note\n0912000222,{(today + datetime.timedelta(days=30)).isoformat()},CSKH-1\n")
    r = _lists(data, "import", "mlexempt", f)
    assert r.returncode == 0, r.stderr
    [rec] = _records(data)                  # (the ListStore add above is no CLI command: no record)
    assert rec["op"] == "import" and rec["detail"] == \
        f"imported 1 bad_rows 0 expired_left 1 sha256 {hashlib.sha256(f.read_bytes()).hexdigest()}"


def test_a_refused_change_writes_no_record(tmp_path):
    data = tmp_path / "d"
    r = _lists(data, "add", "dnc", "123abc")
    assert r.returncode == 2
    f = tmp_path / "dnc.csv"
    f.write_text("number,channel\n0912000777,SV\nbad,SV\n")
    r = _lists(data, "import", "dnc", f, "--replace")
    assert r.returncode == 1 and json.loads(r.stdout)["refused"] is True
    f.write_text("number,channel\nbad,SV\n")
    r = _lists(data, "import", "dnc", f)                  # (no good row: nothing saved)
    assert r.returncode == 1
    assert _lists(data, "add", "dnc", "0912000777").returncode == 0
    assert [(x["op"], x["value"]) for x in _records(data)] == [("add", "0912000777")]     # the one change saved


def test_verdicts_show_an_offline_change_among_the_numbers_verdicts_and_report_counts_it(tmp_path):
    data, log = tmp_path / "d", tmp_path / "verdicts.jsonl"
    assert _lists(data, "add", "dnc", "0912000777", "--channel", "S").returncode == 0
    [rec] = _records(data)
    t = datetime.datetime.fromisoformat(rec["ts"])
    line = {"kind": "sms", "pdu": "submit_sm", "account": "a", "sender": "SHOPABC", "recipient": "84912000777"}
    log.write_text("".join(json.dumps({"ts": (t + datetime.timedelta(seconds=s)).isoformat(), **line, **v}) + "\n"
                           for s, v in ((-60, {"action": "allow", "hits": []}),
                                        (60, {"action": "drop", "hits": [{"symbol": "AD_TO_DNC"}]}))))
    f = tmp_path / "dnc.csv"
    f.write_text("number,channel\n0912000999,SV\n")
    assert _lists(data, "import", "dnc", f).returncode == 0
    changes = data / "lists" / "changes.jsonl"
    out = run_cli("verdicts", "--no-progress", "--log", log, "--log", changes, "--number", "0912 000 777")
    assert out.returncode == 0, out.stderr
    got = [json.loads(x) for x in out.stdout.splitlines()]
    assert [(x["kind"], x.get("action") or x["op"]) for x in got] == [("sms", "allow"), ("list", "add"),
                                                                      ("sms", "drop")]
    assert got[1]["by"] == BY and got[1]["number"] == "+84912000777" and "ts_local" in got[1]
    rep = run_cli("report", "--log", log, "--log", changes, "--out", tmp_path / "rep", "--no-progress")
    assert rep.returncode == 0, rep.stderr
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert s["inputs"]["malformed"] == 0 and sum(s["totals"]["sms"].values()) == 2
    assert list(s["list_changes"].values()) == [{"dnc": {"add": 1, "remove": 0, "import": 1, "replace": 0}}]


def test_the_record_is_one_whole_line_appended_in_one_write(tmp_path, monkeypatch):
    from engine.lists import changes
    p = tmp_path / "changes.jsonl"
    p.write_bytes(b'{"ts": "2026-12-07T09:00:00+00:00", "kind": "li')       # a line a crash cut short
    writes, flags = [], []
    real_write, real_open = os.write, os.open
    monkeypatch.setattr(os, "write", lambda fd, b: writes.append(bytes(b)) or real_write(fd, b))
    monkeypatch.setattr(os, "open", lambda path, fl, *a: flags.append(fl) or real_open(path, fl, *a))
    rec = changes.list_change(datetime.datetime.now(datetime.timezone.utc), "add", "dnc", "0912000777", "cli uid 7",
                              "+84912000777", "channel S")
    changes.append_change(p, rec)
    assert len(writes) == 1 and flags[0] & os.O_APPEND
    assert p.read_bytes().splitlines()[1] == json.dumps(rec, ensure_ascii=False).encode()


def test_the_verdict_logs_list_line_is_the_same_record(tmp_path):
    """One builder: `ctl lists`' verdict-log line is list_change's record, as the offline one is."""
    from engine.lists.changes import list_change
    from engine.verdictlog import VerdictLog
    when = datetime.datetime(2026, 12, 7, 9, 0, 0, 120301, tzinfo=datetime.timezone.utc)
    v = VerdictLog(tmp_path / "v.jsonl")
    v.write_list_change(when, "remove", "dnc", "0912000777", "ctl uid 0", "+84912000777", "channel SV", False)
    v.close()
    [line] = (tmp_path / "v.jsonl").read_text().splitlines()
    assert json.loads(line) == list_change(when, "remove", "dnc", "0912000777", "ctl uid 0", "+84912000777",
                                           "channel SV", False)


def test_a_change_saved_whose_record_cannot_be_written_stands_said_and_exits_1(tmp_path):
    data = tmp_path / "d"
    (data / "lists" / "changes.jsonl").mkdir(parents=True)            # (no file can be opened there)
    r = _lists(data, "add", "blacklist", "spam.example")
    assert r.returncode == 1 and json.loads(r.stdout)["added"] == "spam.example"
    assert "warning: the change was saved, but its audit record was not written" in r.stderr
    assert "changes.jsonl" in r.stderr
    assert ListStore(data).load().stats()["blacklist"]          # the change stands


def test_the_record_is_written_under_the_lists_write_lock(tmp_path, monkeypatch):
    """One writer: two CLI commands cannot interleave their change and its record (write.lock held meanwhile)."""
    from engine.lists import changes
    from engine.lists.journal import flocked
    store = ListStore(tmp_path / "d")
    store.audit_by = "cli uid 7"
    held, real = [], changes.append_change

    def append(path, rec):
        with flocked(store.write_lock, wait=False) as got:
            held.append(not got)
        real(path, rec)
    monkeypatch.setattr(changes, "append_change", append)
    store.add("blacklist", "spam.example")
    store.remove("blacklist", "spam.example")
    store.import_csv("dnc", b"number,channel\n0912000777,SV\n", "dnc.csv", replace=True)
    assert held == [True, True, True]
    assert [(x["op"], x["by"]) for x in _records(tmp_path / "d")] == [("add", "cli uid 7"), ("remove", "cli uid 7"),
                                                                       ("replace", "cli uid 7")]


def test_a_change_in_force_whose_journal_fold_failed_is_recorded(tmp_path, monkeypatch):
    """The snapshot was installed (the number in force), then folding the DNC journal failed (a full disk): the
    change was saved, so its record is written before the error goes on (it had none)."""
    import engine.lists.store as store_mod
    store = ListStore(tmp_path)
    store.audit_by = "cli uid test"
    store.append_delta("add", 84912000333, "SV")        # (a 5656 line, as serve journals it: the next save folds it)

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store_mod, "replace_with_tail", full)
    try:
        store.add_replacing("dnc", "0912000444")
    except OSError:
        pass
    else:
        raise AssertionError("the fold's error was swallowed")
    assert 84912000444 in ListStore(tmp_path).load(kinds=("dnc",)).dnc_s
    assert [(r["op"], r["value"]) for r in _records(tmp_path)] == [("add", "0912000444")]


def test_under_sudo_the_record_names_the_operator(tmp_path):
    import subprocess
    import sys
    from tests.conftest import ROOT
    env = {**os.environ, "SUDO_USER": "noc-anh"}
    r = subprocess.run([sys.executable, "-m", "engine.cli", "lists", "add", "blacklist", "spam.example", "--data-dir",
                        tmp_path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [x["by"] for x in _records(tmp_path)] == [f"cli uid {os.getuid()} sudo noc-anh"]


_KILLED_AT = """
import os, signal, sys
from engine.lists import ListStore, changes
import engine.lists.store as store_mod
store = ListStore(sys.argv[1])
store.audit_by = "cli uid 5"
where = sys.argv[2]
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "record":               # the snapshot installed, its record not yet appended
    changes.append_change = die
elif where == "save":               # before the snapshot is installed
    store_mod.install_snapshot = die
elif where == "drop":               # the record appended, its write-ahead not yet removed
    changes.drop_intent = die
store.add("dnc", "0912000555", "S")
"""


def _killed(data, where):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _KILLED_AT, str(data), where], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == -9, r.stderr


def test_a_writer_killed_between_its_save_and_its_record_leaves_the_record_to_the_next_writer(tmp_path):
    """kill -9 (the OOM killer, a power cut) after the snapshot was installed and before the record was appended:
    the change is in force with no record. Its record is written ahead, and the next writer appends it."""
    data = tmp_path / "d"
    _killed(data, "record")
    assert 84912000555 in ListStore(data).load(kinds=("dnc",)).dnc_s      # in force
    assert _records(data) == []
    r = _lists(data, "add", "blacklist", "spam.example")
    assert r.returncode == 0, r.stderr
    assert "recorded a change of the dnc list" in r.stderr and "cli uid 5" in r.stderr
    got = _records(data)
    assert [(x["op"], x["list"], x["value"], x["by"]) for x in got] == [
        ("add", "dnc", "0912000555", "cli uid 5"), ("add", "blacklist", "spam.example", BY)]
    assert got[0]["number"] == "+84912000555" and got[0]["detail"] == "channel S"
    assert not (data / "lists" / "changes.pending").exists()


def test_a_writer_killed_before_its_save_leaves_no_record(tmp_path):
    data = tmp_path / "d"
    assert _lists(data, "add", "dnc", "0912000111").returncode == 0
    _killed(data, "save")
    assert 84912000555 not in ListStore(data).load(kinds=("dnc",)).dnc_s
    r = _lists(data, "add", "blacklist", "spam.example")
    assert r.returncode == 0, r.stderr
    assert "was not saved" in r.stderr
    assert [(x["list"], x["value"]) for x in _records(data)] == [("dnc", "0912000111"), ("blacklist", "spam.example")]


def test_a_writer_killed_after_its_record_is_not_recorded_twice(tmp_path):
    data = tmp_path / "d"
    _killed(data, "drop")
    assert _lists(data, "remove", "dnc", "0912000555").returncode == 0
    assert [(x["op"], x["value"]) for x in _records(data)] == [("add", "0912000555"), ("remove", "0912000555")]


def test_serves_journal_compaction_settles_a_dead_writers_record(tmp_path):
    """Any writer under the lists' write lock settles it: serve's fold of the DNC journal too (it writes no record of
    its own)."""
    data = tmp_path / "d"
    _killed(data, "record")
    store = ListStore(data)
    store.append_delta("add", 84912000333, "SV")
    assert store.compact_journal(min_bytes=0)
    assert [(x["op"], x["value"], x["by"]) for x in _records(data)] == [("add", "0912000555", "cli uid 5")]


def test_an_earlier_record_that_cannot_be_written_refuses_the_next_change(tmp_path):
    """Its write-ahead would take the earlier one's place: the change is refused, saying why, and nothing is lost."""
    data = tmp_path / "d"
    _killed(data, "record")
    (data / "lists" / "changes.jsonl").mkdir()
    r = _lists(data, "add", "blacklist", "spam.example")
    assert r.returncode != 0 and "no change is saved until it is" in r.stderr, r.stderr
    assert not any(ListStore(data).load().stats()["blacklist"].values())
    (data / "lists" / "changes.jsonl").rmdir()
    assert _lists(data, "add", "blacklist", "spam.example").returncode == 0
    assert [x["value"] for x in _records(data)] == ["0912000555", "spam.example"]
