"""`--state redis://…?on_error=open` with the server away: the caps hold per process (README "Shared state").
Found by a probe: every ad waiting on one failed script call (or judged during the back-off before the batch
went out) had been judged against the mirror as it was before any of them, so all six pipelined ads to one
recipient went through, and a submit_multi naming one recipient four times was forwarded whole. Each message is
now measured again against the mirror when the batch fails, the ones let through before it included."""
import asyncio
import socket
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.state import install, open_state
from engine.verdict import ALLOW_NO_HITS, Message

from .redis_helpers import free_port

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,,\n"
ICT = timezone(timedelta(hours=7))


def _ad(i):
    return Message("SHOPABC", "0912000401", f"[QC] Uu dai {i}. Tu choi: TC gui 5656",
                   datetime(2026, 3, 2, 9, 0, tzinfo=ICT), "e", "mt")


def _node(tmp_path, url):
    ListStore(tmp_path / "d").import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=tmp_path / "d", with_model=False)
    st = open_state(url, tmp_path / "d")
    install(pipe, st)
    return pipe, st


async def _until(out, n):
    for _ in range(5000):
        if len(out) >= n:
            return
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_ads_judged_before_a_failed_batch_hold_the_cap_among_themselves(tmp_path, server):
    port = free_port()
    srv = None
    if server == "silent":                      # accepts, never answers: the call times out
        srv = socket.socket()
        srv.bind(("127.0.0.1", port))
        srv.listen(50)
    out = {}

    async def main():
        pipe, st = _node(tmp_path, f"redis://127.0.0.1:{port}/0?timeout=0.3&on_error=open")
        sh = pipe.state.shared
        for i in range(6):                      # one read of pipelined PDUs: judged before the store answers
            sh.begin()
            sh.settle(pipe, pipe.judge(_ad(i)), lambda v, i=i: out.__setitem__(i, v))
        await _until(out, 6)
        await st.close()
        return st
    try:
        st = asyncio.run(main())
    finally:
        if srv is not None:
            srv.close()
    acts = [out[i].action.name for i in range(6)]
    assert acts == ["ALLOW"] * 3 + ["DROP"] * 3, acts
    assert all("AD_FREQUENCY_CAP" in [h.symbol for h in out[i].hits] for i in range(3, 6))
    assert st.stats["fail_open"] == 6


def test_a_submit_multi_naming_one_recipient_four_times_is_dropped_with_the_server_away(tmp_path):
    """multi.py's second pass: each destination judged (committing to the store's ops), then one settle."""
    res = {}

    async def main():
        pipe, st = _node(tmp_path, f"redis://127.0.0.1:{free_port()}/0?timeout=0.3&on_error=open")
        sh = pipe.state.shared
        msgs = [_ad(0) for _ in range(4)]
        sh.begin()
        for m in msgs:
            pipe.judge(m)
        sh.settle(pipe, ALLOW_NO_HITS, lambda v: res.__setitem__("final", v))
        await _until(res, 1)
        res["after"] = pipe.judge(_ad(9)).action.name       # nothing of it was counted
        await st.close()
    asyncio.run(main())
    assert res["final"].action.name == "DROP", res
    assert res["after"] == "ALLOW"
