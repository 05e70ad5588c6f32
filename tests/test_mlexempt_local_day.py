"""An mlexempt row's days are the engine's local days (`[engine] timezone`), as the message's day its exemption is read
against: "not before today" and the 366-day horizon of `lists add|import` were the host's date, so on a UTC host
between 17:00 and 24:00 (Hanoi's next day) a row of Hanoi's yesterday was taken and exempted nothing, and in a zone
west of the host a row of its today was refused. And a row whose valid_to has passed leaves the list at its next
change (add or import: said as a warning), is not exported (an export re-imports), and does not hold a place under
the list's bound."""
import json
import shutil
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine.lists import ImportRefused, ListStore, edits
from engine.lists.mlexempt import HORIZON_DAYS, MlExemption

from .conftest import ROOT, run_cli


def _now():
    return datetime.now(timezone.utc)


def _zone_not_on_the_hosts_day():
    """A zone whose local day now is not the host's (one of the two always is not: UTC+14 and UTC-12 are 26 h
    apart), with that day (both days of one instant)."""
    now = _now()
    for name in ("Etc/GMT-14", "Etc/GMT+12"):
        day = now.astimezone(ZoneInfo(name)).date()
        if day != now.astimezone().date():
            return name, day
    pytest.fail("no zone off the host's day")


def _on_the_zones_day(tmp_path, body):
    """body(its own directory, zone, the zone's day), run again once (with the new day, in a new directory) when it
    failed and the zone's day is no longer the one it was given: the zone's midnight passed between the day computed
    here and the one the commands computed (10:00 UTC for Etc/GMT-14, 12:00 for Etc/GMT+12). A failure within one
    day is the test's failure, and so is a second one (the next midnight is a day away)."""
    for attempt in (1, 2):
        zone, local = _zone_not_on_the_hosts_day()
        d = tmp_path / f"attempt{attempt}"
        d.mkdir(parents=True)
        try:
            return body(d, zone, local)
        except (AssertionError, ValueError):
            if attempt == 2 or _now().astimezone(ZoneInfo(zone)).date() == local:
                raise


def _config(tmp_path, zone):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    t = cfg / "telfilter.toml"
    text = t.read_text()
    assert 'timezone = "Asia/Ho_Chi_Minh"' in text
    t.write_text(text.replace('timezone = "Asia/Ho_Chi_Minh"', f'timezone = "{zone}"'))
    return cfg


def test_add_and_import_take_the_engines_local_day(tmp_path):
    _on_the_zones_day(tmp_path, _add_and_import)


def _add_and_import(tmp_path, zone, local):
    cfg, d = _config(tmp_path, zone), tmp_path / "data"

    def add(number, day):
        return run_cli("--config", cfg, "--data-dir", d, "lists", "add", "mlexempt", number, "--valid-to",
                       day.isoformat(), "--note", "T")

    r = add("0912000001", local)                              # its last day is today, local
    assert r.returncode == 0, r.stderr
    r = add("0912000002", local - timedelta(days=1))          # yesterday, local: exempts nothing
    assert r.returncode == 2 and "before today" in r.stderr, r.stderr
    r = add("0912000003", local + timedelta(days=HORIZON_DAYS))
    assert r.returncode == 0, r.stderr
    r = add("0912000004", local + timedelta(days=HORIZON_DAYS + 1))
    assert r.returncode == 2 and f"more than {HORIZON_DAYS} days ahead" in r.stderr, r.stderr
    f = tmp_path / "m.csv"
    f.write_text(f"number,valid_to,note\n0912000005,{local},a\n0912000006,{local - timedelta(days=1)},b\n")
    r = run_cli("--config", cfg, "--data-dir", d, "lists", "import", "mlexempt", f)
    assert r.returncode == 1 and f"{f}:3: valid_to {local - timedelta(days=1)} is before today ({local})" \
        in r.stderr, r.stderr
    assert sorted(ListStore(d).load().ml_exempt) == [84912000001, 84912000003, 84912000005]


def test_a_serves_store_has_the_engines_zone(tmp_path):
    _on_the_zones_day(tmp_path, _serves_store)


def _serves_store(tmp_path, zone, local):
    from engine.app import build
    pipe = build(_config(tmp_path, zone), tmp_path / "data", with_model=False)
    assert pipe.store.today() == local
    pipe.store.add("mlexempt", "0912000001", extra=[local.isoformat(), "T"])     # (what `ctl lists add` calls)
    with pytest.raises(ValueError, match="before today"):
        pipe.store.add("mlexempt", "0912000002", extra=[(local - timedelta(days=1)).isoformat(), "T"])


def _expired(store, *numbers):
    """Rows stored before their valid_to passed (as a year-old list holds them)."""
    def put(L):
        for n in numbers:
            L.add_ml_exemption(MlExemption(n, date(2020, 1, 31), "old"))
    store.modify("mlexempt", put)


def test_expired_rows_leave_at_the_next_change_and_are_not_exported(tmp_path):
    d, soon = tmp_path / "data", (date.today() + timedelta(days=30)).isoformat()
    store = ListStore(d)
    _expired(store, 84912000001, 84912000002)
    assert len(store.load().ml_exempt) == 2                 # loaded as stored: the pipeline reads their date
    out = run_cli("--data-dir", d, "lists", "export", "mlexempt")
    assert out.returncode == 0 and out.stdout.splitlines() == ["number,valid_to,note"], out
    assert "2 mlexempt row(s) whose valid_to is before" in out.stderr and "not exported" in out.stderr, out.stderr
    r = run_cli("--data-dir", d, "lists", "add", "mlexempt", "0912000003", "--valid-to", soon, "--note", "new")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("telfilter: warning: 2 mlexempt row(s) past their valid_to left the list") == 1, r.stderr
    assert json.loads(r.stdout)["stored"] == f"+84912000003,{soon},new"
    assert sorted(ListStore(d).load().ml_exempt) == [84912000003]
    _expired(store, 84912000004)
    f = tmp_path / "m.csv"
    f.write_text(f"number,valid_to,note\n0912000005,{soon},x\n")
    r = run_cli("--data-dir", d, "lists", "import", "mlexempt", f)
    assert r.returncode == 0 and r.stderr.count("1 mlexempt row(s) past their valid_to left the list") == 1, r.stderr
    assert sorted(ListStore(d).load().ml_exempt) == [84912000003, 84912000005]
    # what export writes, import takes back whole (an expired row in it was refused, exit 1)
    _expired(store, 84912000006)
    out = run_cli("--data-dir", d, "lists", "export", "mlexempt", check=True).stdout
    g = tmp_path / "again.csv"
    g.write_text(out)
    r = run_cli("--data-dir", tmp_path / "other", "lists", "import", "mlexempt", g, "--replace")
    assert r.returncode == 0, r.stderr
    assert sorted(ListStore(tmp_path / "other").load().ml_exempt) == [84912000003, 84912000005]


def test_a_lapsed_rows_renewal_says_what_it_replaced(tmp_path):
    d = tmp_path / "data"
    _expired(ListStore(d), 84912000001, 84912000002)
    soon = (date.today() + timedelta(days=30)).isoformat()
    r = run_cli("--data-dir", d, "lists", "add", "mlexempt", "0912000001", "--valid-to", soon, "--note", "CSKH-200")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["replaced"] == ["+84912000001,2020-01-31,old"]      # the earlier date and ticket
    assert "1 mlexempt row(s) past their valid_to left the list" in r.stderr, r.stderr      # the other one


def test_a_refused_import_says_no_row_left(tmp_path, monkeypatch):
    monkeypatch.setattr(edits, "MAX_ENTRIES", 3)
    store, soon = ListStore(tmp_path), (date.today() + timedelta(days=30)).isoformat()
    store.add("mlexempt", "0912000002", extra=[soon, ""])
    store.add("mlexempt", "0912000003", extra=[soon, ""])
    _expired(store, 84912000001)
    rows = "".join(f"09120001{i:02d},{soon},\n" for i in range(3))
    with pytest.raises(ImportRefused, match="refused, mlexempt list unchanged"):
        store.import_csv("mlexempt", f"number,valid_to,note\n{rows}".encode(), "m.csv")
    assert not any("left the list" in w for w in store.warnings), store.warnings
    assert len(store.load().ml_exempt) == 3                 # the expired row too: nothing was saved


def test_expired_rows_hold_no_place_under_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(edits, "MAX_ENTRIES", 2)
    store, soon = ListStore(tmp_path), (date.today() + timedelta(days=30)).isoformat()
    _expired(store, 84912000001, 84912000002)
    store.add("mlexempt", "0912000003", extra=[soon, ""])
    store.add("mlexempt", "0912000004", extra=[soon, ""])
    with pytest.raises(edits.ListFull, match="holds its most, 2 numbers"):
        store.add("mlexempt", "0912000005", extra=[soon, ""])
    assert sorted(store.load().ml_exempt) == [84912000003, 84912000004]


def test_a_day_that_changed_while_it_ran_is_run_again_and_a_failure_within_one_day_fails(tmp_path, monkeypatch):
    """(_on_the_zones_day) The zone's midnight passing between the day computed and the commands' own, made by a
    first computation a day early: the body fails on that day, runs again on the day it is and passes. A body that
    fails within one day is not run again: its failure is the test's."""
    real, calls = _now, []

    def a_day_early_first():
        calls.append(1)
        return real() - timedelta(days=1) if len(calls) == 1 else real()
    monkeypatch.setitem(globals(), "_now", a_day_early_first)
    _on_the_zones_day(tmp_path / "a", _serves_store)
    assert (tmp_path / "a" / "attempt2").is_dir()                # (the first run failed on the early day)
    runs = []

    def fails(d, zone, local):
        runs.append(local)
        assert False, "a failure within one day"
    with pytest.raises(AssertionError, match="a failure within one day"):
        _on_the_zones_day(tmp_path / "b", fails)
    assert len(runs) == 1
