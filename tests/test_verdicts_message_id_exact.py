"""An SMSC's message_id is tied to the very verdict line its message went out on (the sms_id line names it: account,
sender, recipient and the line's time, `"judged"`), never to another line of the same parties: a review found three
wrong joins when ids were given to the oldest waiting line of the parties, or the newest (a care desk told the wrong
verdict). Each test here is one of them, and failed before the tie was exact."""
import json

import smpplib.client
import smpplib.consts
import smpplib.gsm

from engine.app import build
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_verdicts_message_id import HAM, LONG, _id, _line, _send, _verdicts

SRC, DST = "84901234560", "84912345678"


def _client(h):
    c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
    c.connect()
    c.bind_transceiver(system_id="esme1", password="secret")
    return c


def test_a_message_the_smsc_refused_takes_no_id_of_the_next_one(tmp_path):
    # the SMSC answers ESME_RTHROTTLED (routine: the ESME retries): the message was judged and let through, its line
    # written, and it never got an id; the next message of the same parties gets its own, on its own line
    log_path = tmp_path / "verdicts.log"
    vlog = VerdictLog(str(log_path))
    with ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("esme1:secret",),
                      settings=SmppSettings(smsc_log_message_ids=True), verdict_log=vlog) as h:
        c = _client(h)
        h.sim.answer_status = C.ESME_RTHROTTLED
        [(st1, _)] = _send(c, HAM, SRC, DST)
        h.sim.answer_status = 0
        [(st2, mid2)] = _send(c, HAM + " (again)", SRC, DST)
        c.unbind()
        c.disconnect()
    vlog.close()
    assert st1 == C.ESME_RTHROTTLED and st2 == 0
    rc, got, err = _verdicts("--log", log_path, "--number", DST)
    assert rc == 0, err
    assert [(r["action"], r.get("message_ids")) for r in got] == [("allow", None), ("allow", [mid2])]
    rc, got, err = _verdicts("--log", log_path, "--message-id", mid2)
    assert rc == 0, err
    [line] = got
    assert line["ts"] == [json.loads(x) for x in log_path.read_text().splitlines()][1]["ts"]


def test_an_id_whose_line_the_filters_leave_out_shows_no_other_line(tmp_path):
    a, b = "2026-12-07T02:00:00.000100+00:00", "2026-12-07T02:00:00.000900+00:00"
    recs = [_line(a, action="tag"), _line(b), _id("2026-12-07T02:00:00.02+00:00", "A1", judged=a),
            _id("2026-12-07T02:00:00.03+00:00", "B1", judged=b),
            # a newer message of the parties, then an id of the first one more than two minutes late
            _line("2026-12-07T02:05:00+00:00", action="tag"), _id("2026-12-07T02:05:01+00:00", "A9", judged=a)]
    p = tmp_path / "v.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    # B1's line is an allow: a tag query finds nothing (it printed A's line with ["A1", "B1"])
    rc, got, err = _verdicts("--log", p, "--action", "tag", "--message-id", "B1")
    assert rc == 1 and got == [], got
    rc, got, err = _verdicts("--log", p, "--action", "tag", "--number", "0912345678")
    assert rc == 0, err
    assert [(r["ts"], r.get("message_ids")) for r in got] == [(a, ["A1"]), ("2026-12-07T02:05:00+00:00", None)]
    # the late id is not the newer line's: shown by itself where the line it names was printed already (it says
    # no action: a query by action does not show it)
    rc, got, err = _verdicts("--log", p, "--number", "0912345678")
    assert [(r["kind"], r["ts"], r.get("message_ids"), r.get("message_id")) for r in got] == [
        ("sms", a, ["A1"], None), ("sms", b, ["B1"], None), ("sms", "2026-12-07T02:05:00+00:00", None, None),
        ("sms_id", "2026-12-07T02:05:01+00:00", None, "A9")]
    # --message-id ties it exactly, however late: the line it names, with every id of it
    rc, got, err = _verdicts("--log", p, "--message-id", "A9")
    assert rc == 0 and [(r["ts"], r["message_ids"]) for r in got] == [(a, ["A1", "A9"])]


def test_a_late_parts_id_goes_to_its_own_line_not_to_the_parties_next_message(tmp_path):
    # part 1 of 2 waits concat_timeout, its message is judged and sent; another message of the same parties goes;
    # then part 2 comes, late: judged again (its line says `late`), sent, and its id names that line
    log_path = tmp_path / "verdicts.log"
    vlog = VerdictLog(str(log_path))
    st = SmppSettings(smsc_log_message_ids=True, concat_timeout=0.3)
    with ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("esme1:secret",), settings=st,
                      verdict_log=vlog) as h:
        c = _client(h)
        parts, enc, esm = smpplib.gsm.make_parts(LONG)
        assert len(parts) == 2

        def part(i):
            c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr=SRC, dest_addr_ton=1, dest_addr_npi=1,
                           destination_addr=DST, short_message=parts[i], data_coding=enc, esm_class=esm)
            r = c.read_pdu()
            return r.status, r.message_id.decode()
        st1, mid1 = part(0)                     # answered once judged, at concat_timeout
        [(st_ham, mid_ham)] = _send(c, HAM, SRC, DST)
        st2, mid2 = part(1)
        c.unbind()
        c.disconnect()
    vlog.close()
    assert st1 == st_ham == st2 == 0 and len({mid1, mid_ham, mid2}) == 3
    rc, got, err = _verdicts("--log", log_path, "--number", DST)
    assert rc == 0, err
    assert [(r.get("late", False), r.get("message_ids")) for r in got] == [
        (False, [mid1]), (False, [mid_ham]), (True, [mid2])]
    rc, got, err = _verdicts("--log", log_path, "--message-id", mid2)
    assert rc == 0, err
    assert [(r.get("late"), r["message_ids"]) for r in got] == [(True, [mid2])]


DESTS = ((1, 1, 1, "84912345678"), (1, 1, 1, "84912345679"))


def _submit_multi(tmp_path, answer=None):
    """A submit_multi of HAM to DESTS through the proxy (the simulator's answer to it from `answer(h, sess, ev)` when
    given): (its resp, the verdict log's records, the log's path)."""
    from engine.smpp_proxy.codec import encode
    from engine.smpp_proxy.codec import pdu as P
    from tests.test_smpp_proxy import raw_session, read_raw
    log_path = tmp_path / "verdicts.log"
    vlog = VerdictLog(str(log_path))
    with ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("esme1:secret",),
                      settings=SmppSettings(smsc_log_message_ids=True), verdict_log=vlog) as h:
        if answer is not None:
            real = h.sim.on_pdu
            h.sim.on_pdu = lambda sess, ev: real(sess, ev) if ev.command_id != C.SUBMIT_MULTI else answer(h, sess, ev)
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitMulti(sequence_number=5, source_addr=SRC, dest_addresses=DESTS,
                                       short_message=HAM.encode())))
        resp = read_raw(s)
        s.close()
    vlog.close()
    return resp, [json.loads(x) for x in log_path.read_text().splitlines()], log_path


def test_a_submit_multis_id_names_each_destinations_own_line(tmp_path):
    # one PDU, one message_id, a verdict line a destination (each judged at its own instant): an sms_id line a
    # destination, each naming its destination's line
    resp, recs, log_path = _submit_multi(tmp_path)
    assert resp.command_status == 0 and resp.message_id
    lines = {r["recipient"]: r["ts"] for r in recs if r["kind"] == "sms"}
    ids = {r["recipient"]: r["judged"] for r in recs if r["kind"] == "sms_id"}
    assert ids == lines and len(set(lines.values())) == 2
    rc, got, err = _verdicts("--log", log_path, "--message-id", resp.message_id)
    assert rc == 0, err
    assert [(r["recipient"], r["message_ids"]) for r in got] == [(d[3], [resp.message_id]) for d in DESTS]


def test_message_id_says_when_its_ids_name_more_lines_than_it_shows(tmp_path):
    # an SMSC that reuses ids: the first pass keeps the lines of MAX_IDS of them and says so (it stopped silently)
    from engine.report.find import MAX_IDS
    recs = []
    for i in range(MAX_IDS + 1):
        t = f"2026-12-07T02:{i // 60:02d}:{i % 60:02d}+00:00"
        recs += [_line(t), _id(t.replace("+", ".5+"), "SAME", judged=t)]
    p = tmp_path / "v.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rc, got, err = _verdicts("--log", p, "--message-id", "SAME")
    assert rc == 0 and len(got) == MAX_IDS and f"more than {MAX_IDS} lines" in err, err
    assert all(r["message_ids"] == ["SAME"] for r in got)


def test_held_keys_are_bounded_and_an_id_past_the_bound_goes_to_no_other_line():
    from datetime import datetime, timedelta, timezone

    from engine.report.msgid_join import IdJoin, forwarded
    j = IdJoin(max_keys=2)
    t = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)
    times = [t + timedelta(milliseconds=i) for i in range(3)]
    for x in times:
        list(j.ready(x))
        j.add(x, _line(x.isoformat()), True)
    out = list(j.ready(times[-1]))                  # the oldest key let go: its line printed without waiting
    assert [ts for ts, _ in out] == [times[0]] and len(j.keys) == 2
    assert not j.sms_id(_id(times[-1].isoformat(), "OLD", judged=times[0].isoformat()))
    assert j.sms_id(_id(times[-1].isoformat(), "NEW", judged=times[2].isoformat()))
    assert [r.get("message_ids") for _, r in j.rest()] == [None, ["NEW"]]
    # no id names an MO's line or a replace_sm's: they are not held
    for pdu in ("DeliverSm MO", "DataSm MO x2/2", "ReplaceSm"):
        assert not forwarded({**_line(t.isoformat()), "pdu": pdu})
    assert forwarded({**_line(t.isoformat()), "pdu": "SubmitSm part 2/2 late", "late": True})


def test_a_submit_multis_destination_the_smsc_listed_unsuccessful_gets_no_id(tmp_path):
    # the submit_multi_resp takes the message as M1 but lists one destination unsuccessful (SMPP 3.4 §4.5.2): that
    # destination's line must not show M1 (a care desk would read it as sent)
    import time
    from engine.smpp_proxy.codec import pdu as P

    def second_unsuccessful(h, sess, ev):
        h.sim.received.append((time.monotonic(), ev))
        sess.send(P.SubmitMultiResp(sequence_number=ev.sequence_number, message_id="M1",
                                    unsuccess_smes=((1, 1, "84912345679", C.ESME_RINVDSTADR),)))
    resp, recs, log_path = _submit_multi(tmp_path, second_unsuccessful)
    assert resp.command_status == 0 and resp.message_id == "M1"
    assert sorted(r["recipient"] for r in recs if r["kind"] == "sms") == ["84912345678", "84912345679"]
    assert [r["recipient"] for r in recs if r["kind"] == "sms_id"] == ["84912345678"]
    rc, got, err = _verdicts("--log", log_path, "--message-id", "M1")
    assert rc == 0, err
    assert [(r["recipient"], r["message_ids"]) for r in got] == [("84912345678", ["M1"])]
