"""`telfilter ctl lists add|remove mlexempt` on a running serve: the next SMS from the number is judged with the
exemption (ML_EXEMPT in its verdict log line, let through), and without it once removed; a row without a valid_to
is refused by the server with the reason, nothing changed. 127.0.0.1 only (ports from TELFILTER_TEST_PORTS)."""
import json
import os
from datetime import date, timedelta

import smpplib.client
import smpplib.gsm

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .test_control import _serve, _stop, ctl
from .test_serve import wait_for

PRIZE = "Chuc mung ban trung thuong iPhone 15, soan NHAN gui 8x77 de nhan qua ngay hom nay"


def _send(port, n):
    c = smpplib.client.Client("127.0.0.1", port, timeout=10)
    c.connect()
    c.bind_transceiver(system_id="t", password="pw")
    parts, enc, esm = smpplib.gsm.make_parts(f"{PRIZE} {n}")
    c.send_message(source_addr_ton=1, source_addr="84987654321", dest_addr_ton=1, destination_addr="84912345678",
                   short_message=parts[0], data_coding=enc, esm_class=esm)
    c.read_pdu()
    c.unbind()
    c.disconnect()


def _verdicts(tmp_path):
    log = tmp_path / "verdicts.jsonl"
    if not log.exists():
        return []
    return [(r["action"], [h["symbol"] for h in r["hits"]])
            for r in map(json.loads, log.read_text().split("\n")[:-1]) if r.get("kind") == "sms"]


def test_ctl_mlexempt_add_remove_in_force_for_the_next_message(tmp_path):
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, port = _serve(tmp_path, sim.port)
    try:
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        _send(port, 1)
        assert wait_for(lambda: len(_verdicts(tmp_path)) == 1)
        assert _verdicts(tmp_path)[0] == ("drop", ["ML_SPAM"])
        soon = (date.today() + timedelta(days=7)).isoformat()
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0987654321", "--valid-to", soon, "--note", "CSKH-77")
        assert r.returncode == 0, r.stderr
        ans = json.loads(r.stdout)
        assert ans["ok"] and ans["stored"] == f"+84987654321,{soon},CSKH-77" and "replaced" not in ans, ans
        # a renewal says the row it replaced (the desk sees the earlier date and ticket it overwrote)
        later = (date.today() + timedelta(days=14)).isoformat()
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0987654321", "--valid-to", later, "--note", "CSKH-78")
        ans = json.loads(r.stdout)
        assert ans["stored"] == f"+84987654321,{later},CSKH-78" and ans["replaced"] == [f"+84987654321,{soon},CSKH-77"]
        _send(port, 2)
        assert wait_for(lambda: len(_verdicts(tmp_path)) == 2)
        assert _verdicts(tmp_path)[1] == ("allow", ["ML_EXEMPT"])
        st = json.loads(ctl(tmp_path, "stats").stdout)
        assert st["lists"]["mlexempt"] == {"numbers": 1, "expired": 0}
        # no valid_to: refused by the server (exit 1) with the reason, the row in force unchanged
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0987654322")
        assert r.returncode == 1 and "--valid-to YYYY-MM-DD (required" in r.stderr, r.stderr
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0987654322", "--valid-to", "2099-01-01")
        assert r.returncode == 1 and "days ahead" in r.stderr, r.stderr
        r = ctl(tmp_path, "lists", "remove", "mlexempt", "+84987654321")
        assert r.returncode == 0 and json.loads(r.stdout)["found"] is True, r.stderr
        _send(port, 3)
        assert wait_for(lambda: len(_verdicts(tmp_path)) == 3)
        assert _verdicts(tmp_path)[2] == ("drop", ["ML_SPAM"])
        # the service log names each change with its date and note (the desk's ticket)
        said = (tmp_path / "stderr1.log").read_text()
        assert f"ctl lists add mlexempt 0987654321 valid_to {soon} note CSKH-77 by uid {os.getuid()}" in said, said
        assert f"ctl lists remove mlexempt +84987654321 by uid {os.getuid()}" in said, said
    finally:
        _stop(p)
        sim.stop()


def test_ctl_add_says_the_expired_rows_that_left_the_list(tmp_path):
    """Rows past their valid_to leave the list with a `ctl lists add`: the answer says how many (a warning, and
    `expired_left`), as do the service log's audit line and the verdict log's `list` line (they went silently)."""
    from engine.lists import ListStore
    from engine.lists.mlexempt import MlExemption
    ListStore(tmp_path / "data").modify("mlexempt", lambda L: [L.add_ml_exemption(MlExemption(n, date(2020, 1, 31), "old"))
                                                               for n in (84912000001, 84912000002)])
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, _port = _serve(tmp_path, sim.port)
    try:
        soon = (date.today() + timedelta(days=7)).isoformat()
        r = ctl(tmp_path, "lists", "add", "mlexempt", "0912000003", "--valid-to", soon, "--note", "T")
        assert r.returncode == 0, r.stderr
        ans = json.loads(r.stdout)
        assert ans["expired_left"] == 2, ans
        assert "2 mlexempt row(s) past their valid_to left the list" in r.stderr, r.stderr
        assert sorted(ListStore(tmp_path / "data").load().ml_exempt) == [84912000003]
        said = (tmp_path / "stderr1.log").read_text()
        assert f"ctl lists add mlexempt 0912000003 valid_to {soon} note T by uid {os.getuid()} (2 mlexempt row(s) " \
               "past their valid_to left the list" in said, said
        lines = [json.loads(x) for x in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
        assert any(x.get("kind") == "list" and "2 mlexempt row(s) past their valid_to" in x.get("detail", "")
                   for x in lines), lines
    finally:
        _stop(p)
        sim.stop()
