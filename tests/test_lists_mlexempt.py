"""The mlexempt list (engine/lists/mlexempt.py), the care desk's remedy for a subscriber the classifier wrongly drops:
its CSV contract (a required valid_to, at most HORIZON_DAYS ahead, a one-line bounded note; each bad row as
FILE:LINE), `lists import|export|add|remove|stats`, its snapshot (a data dir written before the kind existed loads),
its stated bound, and rule files may not take its symbol."""
import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.lists import ImportRefused, ListStore
from engine.lists import edits, mlexempt
from engine.lists.csvio import HEADERS, read_csv
from engine.lists.mlexempt import HORIZON_DAYS, NOTE_MAX, MlExemption

from .conftest import run_cli

TZ = ZoneInfo("Asia/Ho_Chi_Minh")      # the shipped config's [engine] timezone: the CLI's days are its local days
TODAY = SOON = LAST = TOO_FAR = YESTERDAY = None      # set by _dates, for each test


@pytest.fixture(autouse=True)
def _dates():
    """The dates, counted from the day the test runs on, as the product reads it then (mlexempt.today in the engine's
    zone). Set once at import, they were the day the suite was collected: a run that went past midnight before
    reaching this file had TOO_FAR accepted (a day short of the horizon by then) and two tests failed."""
    global TODAY, SOON, LAST, TOO_FAR, YESTERDAY
    TODAY = mlexempt.today(TZ)
    SOON = (TODAY + timedelta(days=30)).isoformat()
    LAST = (TODAY + timedelta(days=HORIZON_DAYS)).isoformat()
    TOO_FAR = (TODAY + timedelta(days=HORIZON_DAYS + 1)).isoformat()
    YESTERDAY = (TODAY - timedelta(days=1)).isoformat()


def _csv(*rows):
    return ("number,valid_to,note\n" + "".join(r + "\n" for r in rows)).encode()


def test_header_and_rows():
    assert HEADERS["mlexempt"] == ["number", "valid_to", "note"]
    recs, errs = read_csv("mlexempt", _csv(f"0987654321,{SOON},CSKH-48213 wedding invitations",
                                           f"+84912345678,{LAST},"), "m.csv", TODAY)
    assert errs == []
    assert recs == [MlExemption(84987654321, date.fromisoformat(SOON), "CSKH-48213 wedding invitations"),
                    MlExemption(84912345678, date.fromisoformat(LAST), "")]


def test_expiry_required_bounded_note_one_line_each_error_on_its_line():
    data = _csv(f"0987654321,{SOON},ok",            # line 2: good
                "0987654322,,no date",              # 3
                f"0987654323,{TOO_FAR},too far",    # 4
                f"0987654324,{YESTERDAY},expired",  # 5
                "0987654325,31/12/2026,bad form",   # 6
                f"0987654326,{SOON},\"two\nlines\"",  # 7-8 (a quoted line break)
                f"0987654327,{SOON}," + "x" * (NOTE_MAX + 1),   # 9
                f"5656,{SOON},short code",          # 10
                f"0987654328,{SOON}")               # 11: a column missing
    recs, errs = read_csv("mlexempt", data, "m.csv", TODAY)
    assert [r.number for r in recs] == [84987654321]
    got = {e.line: e.message for e in errs}
    assert sorted(got) == [3, 4, 5, 6, 7, 9, 10, 11], got
    assert "valid_to is required" in got[3]
    assert f"more than {HORIZON_DAYS} days ahead" in got[4] and LAST in got[4]
    assert "before today" in got[5]
    assert "YYYY-MM-DD" in got[6]
    assert "one line" in got[7]
    assert f"at most {NOTE_MAX}" in got[9]
    assert "not a subscriber number" in got[10]
    assert "expected 3 columns" in got[11]


def test_cli_import_reports_file_line_and_export_round_trips(tmp_path):
    d = tmp_path / "data"
    f = tmp_path / "m.csv"
    f.write_bytes(_csv(f"0987654321,{SOON},CSKH-1", "0987654322,,x", f"0912345678,{LAST},\"CSKH-2, a comma\""))
    r = run_cli("--data-dir", d, "lists", "import", "mlexempt", f)
    assert r.returncode == 1
    assert f"{f}:3: valid_to is required" in r.stderr, r.stderr
    assert json.loads(r.stdout) == {"imported": 2, "errors": 1, "kind": "mlexempt", "list": {"numbers": 2, "expired": 0}}
    out = run_cli("--data-dir", d, "lists", "export", "mlexempt", check=True).stdout
    assert out.splitlines() == ["number,valid_to,note", f"+84912345678,{LAST},\"CSKH-2, a comma\"",
                                f"+84987654321,{SOON},CSKH-1"]
    # the export imports again (--replace) into another data dir, the same list
    g = tmp_path / "export.csv"
    g.write_text(out)
    run_cli("--data-dir", tmp_path / "other", "lists", "import", "mlexempt", g, "--replace", check=True)
    assert run_cli("--data-dir", tmp_path / "other", "lists", "export", "mlexempt", check=True).stdout == out
    assert ListStore(d).load().ml_exempt == ListStore(tmp_path / "other").load().ml_exempt
    st = json.loads(run_cli("--data-dir", d, "lists", "stats", check=True).stdout)
    assert st["mlexempt"] == {"numbers": 2, "expired": 0}


def test_cli_add_remove(tmp_path):
    d = tmp_path / "data"
    r = run_cli("--data-dir", d, "lists", "add", "mlexempt", "0987654321", "--valid-to", SOON, "--note", "CSKH-7")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stored"] == f"+84987654321,{SOON},CSKH-7"
    # a second row for the number replaces it (a renewal)
    run_cli("--data-dir", d, "lists", "add", "mlexempt", "+84987654321", "--valid-to", LAST, check=True)
    assert ListStore(d).load().ml_exempt == {84987654321: MlExemption(84987654321, date.fromisoformat(LAST), "")}
    # no --valid-to, one too far, an option the list does not take: refused, exit 2, nothing changed
    for args, why in ((["0987654322"], "--valid-to YYYY-MM-DD (required"),
                      (["0987654322", "--valid-to", TOO_FAR], f"more than {HORIZON_DAYS} days ahead"),
                      (["0987654322", "--valid-to", SOON, "--owner", "X"], "--owner does not apply to the mlexempt"),
                      (["0987654322", "--valid-to", SOON, "--note", "a\tb"], "one line")):
        r = run_cli("--data-dir", d, "lists", "add", "mlexempt", *args)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    assert list(ListStore(d).load().ml_exempt) == [84987654321]
    # --note is the mlexempt list's alone
    r = run_cli("--data-dir", d, "lists", "add", "blacklist", "0987654399", "--note", "x")
    assert r.returncode == 2 and "--note does not apply to the blacklist" in r.stderr
    r = run_cli("--data-dir", d, "lists", "remove", "mlexempt", "0987654321")
    assert r.returncode == 0 and json.loads(r.stdout)["found"] is True
    r = run_cli("--data-dir", d, "lists", "remove", "mlexempt", "0987654321")
    assert r.returncode == 1 and json.loads(r.stdout)["found"] is False
    assert ListStore(d).load().ml_exempt == {}


def test_snapshot_keeps_expired_rows_and_a_data_dir_without_the_kind_loads(tmp_path):
    store = ListStore(tmp_path, TZ)
    store.add("blacklist", "spam.example")
    store.add("consent", "0912345678", extra=["Shop"])
    # a data dir written before the kind existed: other snapshots, none for mlexempt
    assert not store.path("mlexempt").exists()
    L = store.load(strict=True)
    assert L.ml_exempt == {} and L.sources["mlexempt"] is None and L.bl_domains == {"spam.example"}
    assert store.snapshot_signature()[-1] is None
    # a row expired since it was written loads as stored (it exempts nothing: the pipeline reads its date)
    old = MlExemption(84987654321, date(2020, 1, 31), "CSKH-old")
    store.modify("mlexempt", lambda L: L.add_ml_exemption(old))
    assert ListStore(tmp_path).load(strict=True).ml_exempt == {84987654321: old}
    # and it can still be removed
    assert store.remove("mlexempt", "0987654321") is True


def test_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(edits, "MAX_ENTRIES", 2)
    store = ListStore(tmp_path, TZ)
    store.add("mlexempt", "0987654321", extra=[SOON, ""])
    store.add("mlexempt", "0987654322", extra=[SOON, ""])
    store.add("mlexempt", "0987654322", extra=[LAST, "renewed"])      # (a renewal of one there: no new entry)
    with pytest.raises(edits.ListFull, match="holds its most, 2 numbers"):
        store.add("mlexempt", "0987654323", extra=[SOON, ""])
    with pytest.raises(ImportRefused, match=r"m\.csv:2: refused, mlexempt list unchanged"):
        store.import_csv("mlexempt", _csv(f"0987654324,{SOON},", f"0987654325,{SOON},"), "m.csv")
    assert sorted(store.load().ml_exempt) == [84987654321, 84987654322]
    # --replace with the bound's worth goes in
    n, errs = store.import_csv("mlexempt", _csv(f"0987654324,{SOON},", f"0987654325,{SOON},"), "m.csv", replace=True)
    assert (n, errs) == (2, []) and sorted(store.load().ml_exempt) == [84987654324, 84987654325]
    assert mlexempt.MAX_ENTRIES == 100_000


def test_a_rule_file_may_not_name_ml_exempt(tmp_path):
    (tmp_path / "x.toml").write_text('[[rule]]\nsymbol = "ML_EXEMPT"\ndescription = "x"\naction = "drop"\n'
                                     '[rule.when]\ntext_matches = "x"\n')
    r = run_cli("rules", "check", tmp_path, "--no-examples")
    assert r.returncode == 2 and "ML_EXEMPT is one the engine's own hits carry" in r.stderr + r.stdout


def test_stats_count_the_rows_in_force_and_the_expired_ones_apart(tmp_path):
    """`lists stats` (and `ctl stats`, an import's "list") said every row stored as a number exempt: a row past its
    valid_to stays until the list's next add or import, exempting nothing, and was counted with the rest."""
    d = tmp_path / "data"
    store = ListStore(d, TZ)
    store.modify("mlexempt", lambda L: L.add_ml_exemption(MlExemption(84987654321, date(2020, 1, 31), "CSKH-old")))
    store.modify("mlexempt", lambda L: L.add_ml_exemption(MlExemption(84987654322, TODAY, "CSKH-today")))
    st = json.loads(run_cli("--data-dir", d, "lists", "stats", check=True).stdout)
    assert st["mlexempt"] == {"numbers": 1, "expired": 1}, st["mlexempt"]
    L = store.load()
    assert L.stats(TODAY)["mlexempt"] == {"numbers": 1, "expired": 1}
    assert L.stats(TODAY + timedelta(days=1))["mlexempt"] == {"numbers": 0, "expired": 2}     # valid_to inclusive
