"""Sender registry: one owner per sender on any date. A sender registered to two owners on overlapping dates (not
only the very same dates) is refused with both rows named, and nothing is written; the same owner's overlapping
registrations (a renewal, QC beside CSKH) stand together, read the same whatever the rows' order."""
import json
from datetime import datetime, timezone

import pytest

from engine.context import MessageContext
from engine.lists import ListStore
from engine.lists.csvio import read_csv
from engine.verdict import Message

from .conftest import run_cli

HEAD = "sender,owner,category,valid_from,valid_to,accounts\n"


def _csv(tmp_path, name, rows):
    f = tmp_path / name
    f.write_text(HEAD + "".join(r + "\n" for r in rows), encoding="utf-8")
    return f


@pytest.mark.parametrize("first,second,overlap", [
    ("2026-01-01,2026-06-30", "2026-06-01,2026-12-31", "2026-06-01..2026-06-30"),
    ("2026-01-01,2026-12-31", "2026-06-01,", "2026-06-01..2026-12-31"),     # open-ended over a dated one
    (",", "2026-03-01,2026-03-31", "2026-03-01..2026-03-31"),                # every date over a month
    ("2026-01-01,", "2027-01-01,", "2027-01-01..(open)"),
    ("2026-01-01,2026-12-31", "2026-01-01,2026-12-31", "2026-01-01..2026-12-31"),   # the same dates, as before
])
def test_two_owners_on_overlapping_dates_is_a_row_error_naming_both_rows(first, second, overlap):
    data = HEAD + f"SHOPX,Shop A,QC,{first},\nOTHER,Other Co,QC,,,\nshopx,Shop B,CSKH,{second},\n"
    recs, errs = read_csv("senders", data.encode(), "senders.csv")
    assert [r.owner for r in recs] == ["Shop A", "Other Co"]
    assert [(e.line, e.owner_clashes) for e in errs] == [(4, 1)], errs
    m = errs[0].message
    assert "'shopx'" in m and "'Shop B'" in m and "'Shop A'" in m and "senders.csv:2" in m, m
    assert f"both hold it {overlap} " in m, m


def test_adjacent_periods_of_two_owners_stand(tmp_path):
    """A brand handed over: A up to 31 May, B from 1 June. Each date has one owner."""
    f = _csv(tmp_path, "s.csv", ["SHOPX,Shop A,QC,2026-01-01,2026-05-31,", "SHOPX,Shop B,QC,2026-06-01,,"])
    run_cli("lists", "import", "senders", f, "--data-dir", tmp_path / "d", check=True)
    L = ListStore(tmp_path / "d").load()
    assert [_owner(L, day) for day in ("2026-05-31", "2026-06-01")] == ["Shop A", "Shop B"]


def test_an_import_with_two_owners_on_overlapping_dates_writes_nothing(tmp_path):
    d = tmp_path / "d"
    f = _csv(tmp_path, "s.csv", ["OTHER,Other Co,QC,,,", "SHOPX,Shop A,QC,2026-01-01,2026-06-30,",
                                 "SHOPX,Shop B,QC,2026-06-01,2026-12-31,"])
    for extra in ((), ("--replace",), ("--replace", "--allow-partial")):
        p = run_cli("lists", "import", "senders", f, "--data-dir", d, *extra)
        assert p.returncode == 1 and json.loads(p.stdout)["refused"] is True, (extra, p.stdout, p.stderr)
        assert f"{f}:4: sender 'SHOPX' registered to 'Shop B'" in p.stderr and f"on {f}:3" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
        assert not ListStore(d).load().senders, extra          # not even the rows before it (OTHER, Shop A)


def test_an_import_giving_a_stored_sender_a_second_owner_is_refused(tmp_path):
    d = tmp_path / "d"
    run_cli("lists", "import", "senders", _csv(tmp_path, "a.csv", ["SHOPX,Shop A,QC,2026-01-01,2026-06-30,"]),
            "--data-dir", d, check=True)
    before = run_cli("lists", "export", "senders", "--data-dir", d, check=True).stdout
    f = _csv(tmp_path, "b.csv", ["NEWCO,New Co,QC,,,", "SHOPX,Shop B,CSKH,2026-06-01,,"])
    p = run_cli("lists", "import", "senders", f, "--data-dir", d)
    assert p.returncode == 1 and json.loads(p.stdout)["refused"] is True, p.stderr
    assert f"{f}:3: sender 'SHOPX' registered to 'Shop B' for 2026-06-01..(open) and to 'Shop A' for " \
           "2026-01-01..2026-06-30 in the registry as stored" in p.stderr, p.stderr
    assert "both hold it 2026-06-01..2026-06-30" in p.stderr
    assert run_cli("lists", "export", "senders", "--data-dir", d, check=True).stdout == before
    # --replace drops the stored registration: then the file is the registry, and it is consistent
    run_cli("lists", "import", "senders", f, "--data-dir", d, "--replace", check=True)


def test_lists_add_of_a_second_owner_on_overlapping_dates_is_refused(tmp_path):
    d = tmp_path / "d"
    add = ("lists", "add", "senders", "SHOPX", "--data-dir", d, "--category", "QC")
    run_cli(*add, "--owner", "Shop A", "--valid-from", "2026-01-01", "--valid-to", "2026-06-30", check=True)
    p = run_cli(*add, "--owner", "Shop B", "--valid-from", "2026-03-01")
    assert p.returncode == 2 and "'Shop B'" in p.stderr and "both hold it 2026-03-01..2026-06-30" in p.stderr, p.stderr
    assert [e.owner for e in ListStore(d).load().sender_entries("shopx")] == ["Shop A"]
    # the very same dates stay an edit of who holds the brand then (the old owner's entry replaced)
    run_cli(*add, "--owner", "Shop B", "--valid-from", "2026-01-01", "--valid-to", "2026-06-30", check=True)
    assert [e.owner for e in ListStore(d).load().sender_entries("shopx")] == ["Shop B"]


def _ctx(L, day, account="esme-a"):
    t = datetime.fromisoformat(day + "T03:00:00+00:00")
    return MessageContext(Message("SHOPX", "0912000001", "hi", t, account, "mt"), L, timezone.utc)


def _owner(L, day):
    return _ctx(L, day).owner


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_one_owner_overlapping_periods_and_categories_stand_together_in_any_order(tmp_path, order):
    """A renewal granted before the old one ends, CSKH beside QC on other dates: the same owner's rows stand; on a
    date both cover the brand holds both categories (an ad reads QC), as for two rows of the same dates."""
    rows = ["SHOPX,Shop A,QC,2026-01-01,2026-06-30,", "SHOPX,Shop A,CSKH,2026-06-01,2026-12-31,"]
    f = _csv(tmp_path, "s.csv", [rows[i] for i in order])
    run_cli("lists", "import", "senders", f, "--data-dir", tmp_path / "d", check=True)
    L = ListStore(tmp_path / "d").load()
    assert len(L.sender_entries("shopx")) == 2
    got = [(c.owner, c.sender_category, c.sender_categories)
           for c in (_ctx(L, day) for day in ("2026-05-31", "2026-06-15", "2026-07-01"))]
    assert got == [("Shop A", "QC", {"QC"}), ("Shop A", "QC", {"QC", "CSKH"}), ("Shop A", "CSKH", {"CSKH"})]


def test_a_row_repeating_a_registration_counts_as_imported_and_adds_nothing(tmp_path):
    """`imported` is the file's good rows (README), as for a DNC number given twice: a senders row repeating an earlier
    one (case and owner spelling folded) was left out of it, so 4 rows read `imported 2, errors 0`."""
    f = _csv(tmp_path, "senders.csv", ["BRANDZ,Z Co,QC,,,", "BRANDZ,Z Co,QC,,,", "brandz,z co,QC,,,",
                                       "BRANDZ,Z Co,CSKH,,,"])
    for _ in range(2):                                   # into the registry, then over it again
        p = run_cli("lists", "import", "senders", f, "--data-dir", tmp_path / "d")
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert (out["imported"], out["errors"]) == (4, 0)
        assert out["list"] == {"names": 1, "entries": 2, "QC": 1, "CSKH": 1}


def test_remove_with_a_category_or_period_takes_out_only_the_registrations_that_match(tmp_path):
    """`lists remove senders VNBANK --category QC` removed every registration of VNBANK, its CSKH one (the bank's
    OTPs) with it, exit 0: the options were accepted and ignored."""
    d = tmp_path / "d"
    f = _csv(tmp_path, "senders.csv", ["VNBANK,Vietnam Bank,CSKH,,,", "VNBANK,Vietnam Bank,QC,2026-01-01,2026-06-30,",
                                       "VNBANK,Vietnam Bank,QC,2027-01-01,,a b"])
    run_cli("lists", "import", "senders", f, "--data-dir", d, check=True)

    def rows():
        return sorted(run_cli("lists", "export", "senders", "--data-dir", d, check=True).stdout.splitlines()[1:])
    p = run_cli("lists", "remove", "senders", "VNBANK", "--category", "qc", "--valid-from", "2026-01-01",
                "--data-dir", d)
    assert p.returncode == 0 and json.loads(p.stdout)["found"], p.stderr
    assert rows() == ["VNBANK,Vietnam Bank,CSKH,,,", "VNBANK,Vietnam Bank,QC,2027-01-01,,a b"]
    p = run_cli("lists", "remove", "senders", "VNBANK", "--owner", "Other Co", "--data-dir", d)
    assert p.returncode == 1 and not json.loads(p.stdout)["found"] and len(rows()) == 2
    p = run_cli("lists", "remove", "senders", "VNBANK", "--category", "ADS", "--data-dir", d)
    assert p.returncode == 2 and "category must be QC or CSKH" in p.stderr and len(rows()) == 2
    p = run_cli("lists", "remove", "senders", "vnbank", "--accounts", "b a", "--owner", "vietnam  bank", "--data-dir", d)
    assert p.returncode == 0 and rows() == ["VNBANK,Vietnam Bank,CSKH,,,"]
    assert run_cli("lists", "remove", "senders", "VNBANK", "--data-dir", d).returncode == 0 and rows() == []
