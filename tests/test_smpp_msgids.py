"""The proxy's message_id -> account map (engine/smpp_proxy/msgids.py): bounded, first in first out."""
from engine.smpp_proxy.msgids import MessageIds


def test_keeps_the_newest_bound_ids():
    m = MessageIds(bound=5)
    for i in range(12):
        m.add(f"id{i}", "odd" if i % 2 else "even")
    assert len(m) == 5
    assert [m.get(f"id{i}") for i in range(12)] == [None] * 7 + ["odd", "even", "odd", "even", "odd"]
    assert "id6" not in m and "id7" in m


def test_an_id_given_again_takes_the_newer_account_and_its_first_slot():
    m = MessageIds(bound=3)
    for mid in ("a", "b", "c"):
        m.add(mid, "acct1")
    m.add("a", "acct2")
    assert len(m) == 3 and m.get("a") == "acct2"
    m.add("d", "acct1")                 # the slot "a" took first is the oldest: "a" goes
    assert m.get("a") is None and m.get("b") == "acct1" and m.get("d") == "acct1"
    assert m.get("zz", "none") == "none"


def test_many_accounts_are_kept_apart():
    m = MessageIds(bound=1000)
    for i in range(1000):
        m.add(f"{i:08X}", f"esme{i % 7}")
    assert all(m.get(f"{i:08X}") == f"esme{i % 7}" for i in range(1000))
