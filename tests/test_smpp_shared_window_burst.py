"""With a shared state store (`--state redis://`, every pool worker) a submit_sm is judged, then waits for the
server to settle its counts before it is forwarded; the SMSC link's window was looked at only before, so a burst
over the window (or the traffic a Redis pause piled up) was judged whole and the messages the window could not take
answered ESME_RTHROTTLED after their verdict lines were written and their counts taken: the verdict log said `tag`
for messages never sent, and each retry was logged and counted again (a probe: `serve --workers 2`, Redis
SIGSTOPped 4 s under 240 submit_sm/s, 40 such lines). Messages waiting for their settle now hold a window slot, so
what no link can take is throttled unjudged, as with the embedded store."""
import json
import socket

from engine.app import build
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.redis_helpers import redis_server  # noqa: F401 (fixture)
from tests.test_smpp_proxy import raw_session, read_raw, wait


def test_a_burst_over_the_smsc_window_is_throttled_unjudged_on_a_shared_store(tmp_path, redis_server):  # noqa: F811
    from engine.state import install
    from engine.state.redis_store import RedisStore
    redis_server.flush()
    log = tmp_path / "verdicts.jsonl"
    pipe = build(data_dir=tmp_path / "data", with_model=False)
    h = ProxyHarness(pipe, settings=SmppSettings(smsc_window=4), verdict_log=VerdictLog(open(log, "w"))).start()
    try:
        async def setup():
            install(pipe, RedisStore(redis_server.url))
        h.call(setup())
        s, _ = raw_session(h)
        h.sim.stall = True                              # the window stays full once filled
        s.sendall(b"".join(encode(P.SubmitSm(sequence_number=10 + i, source_addr="84901234567",
                                             destination_addr="84912000%03d" % i, short_message=b"hi %d" % i))
                           for i in range(10)))
        got = {}
        s.settimeout(5)
        while len(got) < 10:
            try:
                r = read_raw(s)
            except socket.timeout:
                break
            got[r.sequence_number] = r.command_status
        throttled = [q for q, st in got.items() if st == C.ESME_RTHROTTLED]
        assert len(got) == 6 and len(throttled) == 6, got        # the 4 in the window wait for the SMSC
        h.sim.answer_held()
        assert wait(lambda: h.proxy.stats["forwarded"] == 4, 5) and len(h.sim.submits()) == 4

        def lines():
            return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        assert wait(lambda: len(lines()) >= 4, 5)
        assert len(lines()) == 4, [(x["recipient"], x["action"]) for x in lines()]   # a line for each message sent
    finally:
        h.stop()
