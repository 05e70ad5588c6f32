"""A stop between the parts of a 5656 message put together in Redis (probe, h_dnc: `serve --state redis://`, one
process or `--workers 2`, part 1 of 20 `DK DNC` in, SIGTERM, start, part 2 in): 0 of 20 registered, every part
answered 0. The stop judged each message with what had arrived ("DK D": SHORTCODE_SYNTAX_ERROR) and the second part
after the start was a late part of a judged message (acknowledged, not applied again); the embedded store's parts
journal keeps them for the next start instead (20 of 20). Now a stop leaves the parts in Redis (the rest completes
them wherever it lands) and names the message in `tf:mo:due` for the next start, which judges what arrived when it
is due if the rest never comes."""
import asyncio

from engine.state.mo_parts import SharedMoParts
from engine.state.mo_parts_scripts import DUE

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_mo_concat import Pair, url  # noqa: F401
from .test_smpp_proxy import wait

SRC = "84912000779"


def _stop_and_start(pair):
    """Process 0's shared reassembly stops (serve's stop: close) and a new one starts on its store (restore)."""
    store, shared = pair.shared[0]

    async def go():
        await shared.close()
        n = await store.redis.zcard(DUE)
        fresh = SharedMoParts(store, pair.proxies[0])
        return n, await fresh.restore(), fresh
    n, restored, fresh = pair.call(go())
    pair.shared[0] = (store, fresh)
    return n, restored


def test_a_stop_between_two_parts_leaves_the_message_to_be_completed(tmp_path, url):  # noqa: F811
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        pair.send_parts([(0, 1, 2, b"DK D")], ref=0x35, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5) and pair.sim.mo_responses[0].command_status == 0
        assert _stop_and_start(pair) == (1, 1)
        assert pair.verdicts() == [], "judged at the stop with half its text"
        pair.send_parts([(1, 2, 2, b"NC")], ref=0x35, src=SRC, data_coding=1)       # on the other process
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        assert [h["symbol"] for h in pair.verdicts()[0]["hits"]] == ["DNC_REGISTERED"]
        assert [r.command_status for r in pair.sim.mo_responses] == [0, 0]
        assert any(p.lists.in_dnc(int(SRC), "S") for p in pair.pipes)


def test_a_message_left_by_a_stop_whose_rest_never_comes_is_judged_once_after_the_start(tmp_path, url,  # noqa: F811
                                                                                          monkeypatch):
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "NOT_RECORDED_KEEP", 0.5)          # (the SMSC's retry schedule: an hour)
    with Pair(tmp_path, url, concat_timeout=0.5) as pair:
        pair.send_parts([(0, 1, 2, b"S 0987654321 vay tien")], ref=0x36, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        assert _stop_and_start(pair) == (1, 1)
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        asyncio.run(asyncio.sleep(1.0))
        v = pair.verdicts()
        assert len(v) == 1 and [h["symbol"] for h in v[0]["hits"]] == ["SPAM_REPORTED"], v



def _due_at_each_stop(pair, stops):
    """Stop and start process 0 `stops` times; the scores of DUE (when each message is due, ms) after each stop."""
    store = pair.shared[0][0]
    out = []
    for _ in range(stops):
        async def go():
            await pair.shared[0][1].close()
            scores = [s for _, s in await store.redis.zrange(DUE, 0, -1, withscores=True)]
            fresh = SharedMoParts(store, pair.proxies[0])
            await fresh.restore()
            return scores, fresh
        scores, fresh = pair.call(go())
        pair.shared[0] = (store, fresh)
        out.append(scores)
    return out


def test_a_message_left_waiting_keeps_its_due_time_across_a_second_stop(tmp_path, url):  # noqa: F811
    """A message a start restored and a second stop left waiting again was due an hour after that start (the stop
    read its timer as one armed when its first part came): each deploy put off judging what arrived by an hour."""
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        pair.send_parts([(0, 1, 2, b"DK D")], ref=0x37, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        first, second = _due_at_each_stop(pair, 2)
        assert len(first) == len(second) == 1 and abs(second[0] - first[0]) < 2000, (first, second)
        assert pair.verdicts() == []


def test_a_part_coming_after_the_start_does_not_cut_short_how_long_the_parts_wait(tmp_path, url,  # noqa: F811
                                                                                  monkeypatch):
    """A message in three parts, the first before a stop: the second, after the start, on the process holding its
    restored timer, set the parts' expiry back to KEEP (every part's ADD did), and they were gone when the timer came
    (due an hour after the first part): the message, two parts acknowledged, was never judged at all."""
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "NOT_RECORDED_KEEP", 2.0)          # (an hour)
    monkeypatch.setattr(M, "KEEP", 0.3)                       # (2 minutes)
    with Pair(tmp_path, url, concat_timeout=0.5) as pair:
        pair.send_parts([(0, 1, 3, b"S 0987654321 vay ")], ref=0x38, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        assert _stop_and_start(pair) == (1, 1)
        pair.send_parts([(0, 2, 3, b"tien nhanh")], ref=0x38, src=SRC, data_coding=1)    # the restoring process
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert wait(lambda: len(pair.verdicts()) == 1, 6), "never judged"
        asyncio.run(asyncio.sleep(0.5))
        v = pair.verdicts()
        assert len(v) == 1 and [h["symbol"] for h in v[0]["hits"]] == ["SPAM_REPORTED"], v


def test_a_message_judged_with_no_command_keeps_its_parts_in_redis_across_a_restart(tmp_path, url):  # noqa: F811
    """What arrived made no command (judged at concat_timeout: a syntax error, told): its parts are put back in the
    server with the `wait` mark for NOT_RECORDED_KEEP, nothing of it held by the process, so a stop and start of
    that process (and a kill -9 alike: the server keeps them) leaves its late part to have the whole text judged."""
    from engine.smpp_proxy.mo_restore import NOT_RECORDED_KEEP, mo_origin
    from engine.state.mo_parts_scripts import keys_of
    with Pair(tmp_path, url, concat_timeout=0.5) as pair:
        pair.send_parts([(0, 2, 2, b"vay tien nhanh")], ref=0x37, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        assert [h["symbol"] for h in pair.verdicts()[0]["hits"]] == ["SHORTCODE_SYNTAX_ERROR"]
        store = pair.shared[0][0]
        ks = keys_of((mo_origin(pair.proxies[0].links[0]), SRC, "5656", 0x37, 2))
        ttl = lambda: pair.call(store.redis.pttl(ks[0]))                           # noqa: E731
        assert wait(lambda: 0 < ttl() <= NOT_RECORDED_KEEP * 1000, 5)            # its part, back in the server
        assert _stop_and_start(pair) == (0, 0)          # (nothing of it in the process: nothing left in DUE)
        assert pair.call(store.redis.hkeys(ks[0])) in ([b"2"], ["2"]) and pair.call(store.redis.exists(ks[2])) == 1
        pair.send_parts([(0, 1, 2, b"S 0987654321 lua dao ")], ref=0x37, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.reports()) == 1, 5), pair.verdicts()
        assert pair.reports()[0]["content"] == "lua dao vay tien nhanh"
