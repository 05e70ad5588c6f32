"""A number's DNC changes beside its verdicts (a care-desk walkthrough: an operator's `ctl lists add dnc` was only in
the service log, which the care desk does not read, and `telfilter verdicts --number` did not show it). A change
made on a running serve is a `list` line of the verdict log (who made it, when, what); a subscriber's own 5656
DK DNC / HUY DNC is its MO's line; `verdicts --number` shows both among the number's verdicts, in time order."""
import datetime
import json
import os

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.harness import ProxyHarness
from tests.conftest import run_cli
from tests.durable_helpers import _hours_config
from tests.test_control import _ad_verdicts, _send_ad, _serve, _stop, ctl
from tests.test_serve import wait_for


def test_ctl_and_5656_dnc_changes_show_beside_the_numbers_verdicts(tmp_path):
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    ListStore(tmp_path / "data").add("senders", "SHOPABC", "SV", ["Shop", "QC", "", "", ""])
    p, port = _serve(tmp_path, sim.port, cfg=_hours_config(tmp_path))   # the first ad is allowed at any hour
    try:
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        _send_ad(port, "84912000777", 1)
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 1)
        r = ctl(tmp_path, "lists", "add", "dnc", "0912 000 777", "--channel", "S")
        assert r.returncode == 0, r.stderr
        _send_ad(port, "84912000777", 2)
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 2)
        assert sim.run(sim.sim.send_mo, "84912000777", "5656", "HUY DNC")        # the subscriber's own
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 3)
        r = ctl(tmp_path, "lists", "remove", "dnc", "+84912000777")               # (was not listed any more)
        assert r.returncode == 1 and json.loads(r.stdout)["found"] is False
        r = ctl(tmp_path, "lists", "add", "blacklist", "spam.example")            # no number: not this subscriber's
        assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0912000777", "--valid-to", "2099-01-01", "--note", "T-1")
        assert r.returncode == 1 and "366 days" in r.stdout + r.stderr, r        # refused: no line
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0912000777", "--valid-to",
                (datetime.date.today() + datetime.timedelta(days=30)).isoformat(), "--note", "CSKH-1")
        assert r.returncode == 0, r.stderr
        r = ctl(tmp_path, "drain")
        assert r.returncode == 0 and p.wait(20) == 0
    finally:
        _stop(p)
        sim.stop()
    out = run_cli("verdicts", "--no-progress", "--log", tmp_path / "verdicts.jsonl", "--number", "0912000777")
    assert out.returncode == 0, out.stderr
    got = [json.loads(x) for x in out.stdout.splitlines()]
    uid = f"ctl uid {os.getuid()}"
    assert [(r["kind"], r.get("op") or r.get("action"), r.get("by"), [h["symbol"] for h in r.get("hits", ())])
            for r in got] == [("sms", "allow", None, []),
                              ("list", "add", uid, []),
                              ("sms", "drop", None, ["AD_TO_DNC"]),
                              ("sms", "allow", None, ["DNC_CANCELLED"]),
                              ("list", "remove", uid, []),
                              ("list", "add", uid, [])], got
    add, remove = got[1], got[4]
    assert add["list"] == "dnc" and add["value"] == "0912 000 777" and add["number"] == "+84912000777"
    assert add["detail"] == "channel S" and "found" not in add and remove["found"] is False
    assert all(a["ts"] < b["ts"] for a, b in zip(got, got[1:])) and "ts_local" in add
    exempt = got[5]         # the care desk's ML exemption of the number is among its changes too
    assert exempt["list"] == "mlexempt" and exempt["number"] == "+84912000777" and "CSKH-1" in exempt["detail"]
    # the report reads the list lines and counts no message for them
    rep = run_cli("report", "--log", tmp_path / "verdicts.jsonl", "--out", tmp_path / "rep", "--no-progress")
    assert rep.returncode == 0, rep.stderr
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert s["inputs"]["malformed"] == 0 and sum(s["totals"]["sms"].values()) == 3
    # ... and counts them by period and list (one day here)
    one_add = {"add": 1, "remove": 0, "import": 0, "replace": 0}        # (an offline import is one change too)
    assert list(s["list_changes"].values()) == [{"dnc": one_add, "blacklist": one_add, "mlexempt": one_add}]
    # (the remove found nothing listed: no change counted); a CSV table and report.html's section as every table
    day = next(iter(s["list_changes"]))
    assert (tmp_path / "rep" / "list_changes.csv").read_text().splitlines() == [
        "period_start,list,add,remove,import,replace", f"{day},dnc,1,0,0,0", f"{day},blacklist,1,0,0,0",
        f"{day},mlexempt,1,0,0,0"]
    assert "List changes made on a running serve" in (tmp_path / "rep" / "report.html").read_text()


def test_a_list_lines_number_is_a_number_the_change_names_never_an_address_read_as_digits():
    """`ctl lists add blacklist 192.0.2.7` wrote `"number": "192027"` (the address's digits read as a number), which
    `verdicts --number 192027` then matched; a sender is never a subscriber's number."""
    from engine.control_lists import _number_of
    assert _number_of("blacklist", "192.0.2.7") == "" and _number_of("blacklist", "2001:db8::1") == ""
    assert _number_of("blacklist", "spam.example") == ""
    assert _number_of("blacklist", "0912 000 777") == "+84912000777"
    assert _number_of("dnc", "0912000777") == _number_of("consent", "84912000777") == "+84912000777"
    assert _number_of("mlexempt", "+84912000777") == "+84912000777"
    assert _number_of("senders", "0912000777") == ""
