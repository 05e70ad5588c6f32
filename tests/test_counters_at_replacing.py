"""A replacement's check (Message.replacing: a replace_sm of a message counted toward an advertiser cap counted at
delivery) leaves one stamp of the replaced message's second out of the count, never out of the row's room, and
only under the keys that message was counted under: MemoryCounters.count_at against the brute-force model of
test_counters_at_delivery with that stamp gone, and the Redis batch script deciding it for a node whose mirror
has none of the stamps (tests/redis_helpers.py)."""
import asyncio
import random
from datetime import datetime, timedelta

import pytest

from engine.rules.counters import MemoryCounters
from engine.verdict import Message

from .redis_helpers import redis_server  # noqa: F401
from .redis_state_helpers import _judge, _node
from .test_counters_at_delivery import DAY, ICT, NOW, Model, _stream


@pytest.mark.parametrize("seed", range(4))
def test_count_at_without_a_stamp_is_the_count_of_the_row_without_it(seed):
    """At every step of a random stream, one stamp of the key's row (or a second none has) left out: the count
    is the model's for the row without that one stamp, while the row has room."""
    m, model = MemoryCounters(), Model(3, DAY)
    rnd = random.Random(seed)
    checked = 0
    for key, d, now in _stream(seed, 1500):
        st = sorted(model.st.get(key, []))
        live = [s for s in st if s > now - DAY]
        if st and len(live) < 6:
            gone = rnd.choice(st + [st[-1] + 1])          # (a second no stamp has: nothing is left out)
            rest = list(st)
            if gone in rest:
                rest.remove(gone)
            without = Model(3, DAY)
            without.st[key] = rest
            assert m.count_at("ns", key, d, now, DAY, 3, gone) == without.count(key, d, now), (key, d, now, gone)
            checked += 1
        if m.count_at("ns", key, d, now, DAY, 3) + 1 <= 3:
            m.add_at("ns", key, d, now, DAY, 3)
            model.add(key, d)
    assert checked > 500


def test_a_full_row_has_no_room_for_a_replacement_either():
    """Six live stamps (room for 2 * limit): a replacement's stamp would push a live one out while the one it
    replaces stays until the SMSC takes it, so the row still says no room (the limit)."""
    m = MemoryCounters()
    for k in range(6):
        m.add_at("ns", 1, NOW + 1000 * DAY + 7 * k * DAY, NOW, DAY, 3)
    assert m.count_at("ns", 1, NOW + 1000 * DAY, NOW, DAY, 3, NOW + 1000 * DAY) == 3
    m.remove("ns", 1, NOW + 1000 * DAY + 35 * DAY, DAY, 3)
    assert m.count_at("ns", 1, NOW + 1000 * DAY, NOW, DAY, 3, NOW + 1000 * DAY) == 0


def test_the_replaced_message_s_places_are_its_own_keys(tmp_path):
    """Pipeline.replacing names the places of the caps counted at delivery (AD_FREQUENCY_CAP's owner+recipient
    key), so an ad to another recipient with the same second is not left out of a check."""
    pipe, _ = _node(tmp_path, "n", None)
    at9 = datetime(2026, 3, 3, 9, 0, tzinfo=ICT)
    second, places = pipe.replacing(Message("SHOPABC", "0912000444", "", at9, "e", "mt"), int(at9.timestamp()))
    assert second == int(at9.timestamp()) and len(places) == 1
    ns, _key = next(iter(places))
    assert ns.startswith("AD_FREQUENCY_CAP|owner+recipient|")
    _, other = pipe.replacing(Message("SHOPABC", "0912000555", "", at9, "e", "mt"), second)
    assert other != places


def test_the_redis_script_measures_a_replacement_without_the_replaced_stamp(tmp_path, redis_server):  # noqa: F811
    """Node a lets three ads for Tuesday through; node b, whose mirror has none of them (the server's counts
    decide), judges a replacement of the third: allowed with Message.replacing naming it, dropped without (a
    fourth); and the server keeps the third's stamp until it is given back (four stamps, then three)."""
    redis_server.flush()
    sub = datetime.now(ICT).replace(microsecond=0)
    tue = (sub + timedelta(days=1)).replace(hour=9, minute=0, second=0)

    def ad(i, replacing=None):
        m = Message("SHOPABC", "0912000444", f"[QC] Uu dai {i}. Tu choi: TC gui 5656", tue + timedelta(minutes=i),
                    "e", "mt")
        m.submitted, m.replacing = sub, replacing
        return m

    async def main():
        a, sa = _node(tmp_path, "a", redis_server.url)
        b, sb = _node(tmp_path, "b", redis_server.url)
        got = [(await _judge(a, ad(i)))[0] for i in range(3)]
        third = int((tue + timedelta(minutes=2)).timestamp())
        rep = b.replacing(Message("SHOPABC", "0912000444", "", tue + timedelta(minutes=2), "e", "mt"), third)
        got.append((await _judge(b, ad(2, None)))[0])
        got.append((await _judge(b, ad(2, rep)))[0])
        got.append((await _judge(a, ad(5)))[0])                 # a fourth ad: the replaced stamp still counts
        a.uncharge(Message("SHOPABC", "0912000444", "", tue + timedelta(minutes=2), "e", "mt"), third)
        got.append((await _judge(a, ad(6)))[0])                 # given back: still three (two and the replacement)
        await sa.close()
        await sb.close()
        return got
    assert asyncio.run(main()) == ["allow"] * 3 + ["drop", "allow", "drop", "drop"]
