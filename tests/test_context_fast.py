"""MessageContext's fast facts are the slow ones: local time from a cached UTC offset (per UTC
hour) is `astimezone`'s, around DST transitions and in zones with odd offsets too; the registry
facts of a sender without an entry are those the full resolution gives."""
import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine import context as C
from engine.context import MessageContext
from engine.lists import Lists
from engine.lists.csvio import sender_entry_key
from engine.lists.sets import SenderEntry
from engine.verdict import Call, Message

ZONES = ["Asia/Ho_Chi_Minh", "Europe/London", "America/New_York", "Australia/Lord_Howe",
         "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "Europe/Dublin", "Africa/Casablanca"]


def _slow(t, tz):
    lt = t.astimezone(tz)
    return lt.hour * 3600 + lt.minute * 60 + lt.second, lt.date(), lt.weekday()


def _fast(t, tz):
    c = MessageContext(Message("0912345678", "0912000001", "hi", t), Lists(), tz)
    return c.local_seconds, c.local_date, c.local_weekday


@pytest.mark.parametrize("zone", ZONES)
def test_local_facts_around_every_transition(zone):
    tz = ZoneInfo(zone)
    C._OFFSETS.clear()
    t = datetime(2019, 1, 1, tzinfo=timezone.utc)
    checked = 0
    # every hour of two years holds a transition or not: check each hour's edges and around the
    # transition instant itself, second by second
    prev = t.astimezone(tz).utcoffset()
    while t < datetime(2021, 1, 1, tzinfo=timezone.utc):
        off = (t + timedelta(minutes=59)).astimezone(tz).utcoffset()
        for dt in ((timedelta(0), timedelta(seconds=1), timedelta(minutes=30), timedelta(seconds=3599))
                   if off == prev else [timedelta(seconds=s) for s in range(0, 3600, 7)]):
            u = t + dt
            assert _fast(u, tz) == _slow(u, tz), u
            checked += 1
        prev = off
        t += timedelta(hours=1)
    assert checked > 60_000


def test_local_facts_random_times_and_zones():
    rng = random.Random(5)
    for _ in range(20_000):
        tz = rng.choice([ZoneInfo(rng.choice(ZONES)), timezone.utc, timezone(timedelta(hours=7)),
                         timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(seconds=25_201))])
        ts = rng.uniform(-2e9, 4e9)
        t = datetime.fromtimestamp(ts, timezone.utc).replace(microsecond=rng.choice([0, 1, 999_999, rng.randrange(10 ** 6)]))
        if rng.random() < 0.3:
            t = t.astimezone(timezone(timedelta(hours=rng.randint(-12, 14))))       # any aware input
        assert _fast(t, tz) == _slow(t, tz), (t, tz)


def test_an_hour_holding_a_transition_is_converted_exactly():
    tz = ZoneInfo("Australia/Lord_Howe")            # DST starts at 02:00 +10:30: 15:30 UTC
    t0 = datetime(2020, 10, 3, 15, 0, tzinfo=timezone.utc)
    assert C.utc_offset(tz, t0.timestamp()) is None
    assert C.utc_offset(tz, (t0 - timedelta(hours=1)).timestamp()) == 37_800
    assert C.utc_offset(tz, (t0 + timedelta(hours=1)).timestamp()) == 39_600
    for s in (0, 1799, 1800, 1801, 3599):
        t = t0 + timedelta(seconds=s)
        assert _fast(t, tz) == _slow(t, tz)


def test_offset_cache_is_bounded():
    tz = ZoneInfo("Europe/London")
    for h in range(C._OFFSETS_MAX + 10):
        C.utc_offset(tz, 1.6e9 + h * 3600)
    assert len(C._OFFSETS) <= C._OFFSETS_MAX


def _registry_reference(ctx):
    """The registry facts by the full resolution (what every sender went through before)."""
    entries = ctx.lists.sender_entries(ctx.sender_key)
    problem = "not in the sender registry" if not entries else "?"
    return {"entries": tuple(entries), "registry_problem": problem, "valid_entry": None,
            "sender_category": "unregistered" if ctx.sender_num is None else "number", "owner": None,
            "registered_categories": frozenset()}


@pytest.mark.parametrize("sender", ["0912345678", "FAKEBANK", " Fake Bank ", "5656", "+84912345678"])
@pytest.mark.parametrize("kind", ["sms", "call"])
def test_registry_facts_of_a_sender_without_entry(sender, kind):
    L = Lists()
    L.add_sender(SenderEntry("SHOPABC", "Shop ABC", "QC", None, None, frozenset()))
    t = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    msg = Call(sender, "0912000001", t) if kind == "call" else Message(sender, "0912000001", "hi", t)
    c = MessageContext(msg, L, ZoneInfo("Asia/Ho_Chi_Minh"))
    got = {k: getattr(c, k) for k in ("entries", "registry_problem", "valid_entry", "sender_category", "owner",
                                      "registered_categories")}
    assert got == _registry_reference(c)
    assert c.owner_key == "s:" + str(c.sender_key)


def test_registry_facts_of_registered_senders():
    L = Lists()
    for e in [SenderEntry("SHOPABC", "Shop ABC", "QC", None, None, frozenset()),
              SenderEntry("SHOPABC", "Shop ABC", "CSKH", date(2030, 1, 1), None, frozenset()),
              SenderEntry("OLDSHOP", "Old", "QC", None, date(2010, 1, 1), frozenset()),
              SenderEntry("LIMITED", "Ltd", "QC", None, None, frozenset({"esme-b"}))]:
        L.add_sender(e)
    t = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    c = MessageContext(Message("SHOPABC", "0912000001", "hi", t), L, tz)
    assert (c.sender_category, c.owner, c.registry_problem, c.registered_categories) == \
        ("QC", "Shop ABC", None, frozenset({"QC", "CSKH"}))
    c = MessageContext(Message("OLDSHOP", "0912000001", "hi", t), L, tz)
    assert (c.sender_category, c.owner, c.registry_problem) == ("unregistered", "Old", "registration expired 2010-01-01")
    c = MessageContext(Message("LIMITED", "0912000001", "hi", t, account="esme-a"), L, tz)
    assert (c.sender_category, c.registry_problem) == ("unregistered", "account 'esme-a' not allowed to use it")
    c = MessageContext(Message("LIMITED", "0912000001", "hi", t), L, tz)      # (`check` without --account)
    assert (c.sender_category, c.registry_problem) == \
        ("unregistered", "no ESME account given: its registration names the accounts that may use it")
    c = MessageContext(Call("LIMITED", "0912000001", t), L, tz)
    assert c.sender_category == "QC"


_FACTS = ("entries", "registry_problem", "valid_entry", "sender_category", "owner", "registered_categories")


def test_registry_cache_answers_as_a_fresh_resolution():
    """Resolved registry facts are reused per (entries, account, kind, local date): random senders,
    accounts, days (either side of validity dates), calls and SMS, and registry changes in between
    (new entries, removals) give exactly the facts of a resolution with an empty cache."""
    rng = random.Random(11)
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    names = ["SHOPABC", "BANKX", "LIMITED", "OLDSHOP", "02439998888"]
    days = [date(2026, 3, d) for d in (1, 2, 3)]
    L = Lists()
    C._REGISTRY.clear()
    checked = 0
    for i in range(3000):
        if i % 50 == 0:                         # the registry changes: new tuples for some names
            n = rng.choice(names)
            L.add_sender(SenderEntry(n, rng.choice(["Shop ABC", "Bank X", "Other"]), rng.choice(["QC", "CSKH"]),
                                     rng.choice([None, days[0], days[1]]), rng.choice([None, days[1], days[2]]),
                                     rng.choice([frozenset(), frozenset({"esme-b"})])))
            if rng.random() < 0.2:
                L.senders.pop(sender_entry_key(SenderEntry(rng.choice(names), "", "QC", None, None, frozenset())), None)
        sender = rng.choice(names)
        t = datetime(2026, 3, rng.choice([1, 2, 3]), rng.choice([0, 16, 17, 23]), rng.randrange(60), tzinfo=timezone.utc)
        msg = Call(sender, "0912000001", t) if rng.random() < 0.2 else \
            Message(sender, "0912000001", "hi", t, account=rng.choice(["", "esme-a", "esme-b"]))
        got = {k: getattr(MessageContext(msg, L, tz), k) for k in _FACTS}
        saved = dict(C._REGISTRY)
        C._REGISTRY.clear()
        want = {k: getattr(MessageContext(msg, L, tz), k) for k in _FACTS}
        C._REGISTRY.clear()
        C._REGISTRY.update(saved)
        assert got == want, (i, msg)
        checked += bool(got["entries"])
    assert checked > 1000


def test_registry_cache_is_bounded():
    L = Lists()
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    t = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    for i in range(C._REGISTRY_MAX + 10):
        L.add_sender(SenderEntry(f"BRAND{i}", "B", "QC", None, None, frozenset()))
        assert MessageContext(Message(f"BRAND{i}", "0912000001", "hi", t), L, tz).sender_category == "QC"
    assert 0 < len(C._REGISTRY) <= C._REGISTRY_MAX


def test_an_sms_context_takes_the_numbers_its_message_carries():
    # Message.nums: the SMPP proxy's normalise_number of both addresses, read before judging (not again here)
    t = datetime(2024, 5, 1, 3, tzinfo=timezone.utc)
    read = MessageContext(Message("0912345678", "2439998888", "hi", t, "", "mt", 0, 1), Lists(), timezone.utc)
    given = MessageContext(Message("0912345678", "2439998888", "hi", t, "", "mt", 0, 1,
                                   (read.sender_num, read.recipient_num)), Lists(), timezone.utc)
    assert (given.sender_num, given.recipient_num) == (84912345678, 2439998888)
    assert (given.sender_key, given.recipient_key) == (read.sender_key, read.recipient_key)
    marked = MessageContext(Message("0912345678", "2439998888", "hi", t, nums=(1, 2)), Lists(), timezone.utc)
    assert (marked.sender_num, marked.recipient_num) == (1, 2)


def test_a_renewed_brand_used_by_another_account_is_refused_for_the_account_not_the_old_dates():
    """Care desk, a bank's OTP brand renewed for its own account: another account's message names the account,
    not the expired row the renewal replaced (it said `registration expired …`, and care read the renewal as not
    taken)."""
    L = Lists()
    for e in [SenderEntry("VCBANK", "Vietcom Bank", "CSKH", date(2025, 1, 1), date(2026, 2, 28), frozenset({"bank1"})),
              SenderEntry("VCBANK", "Vietcom Bank", "CSKH", date(2026, 3, 1), date(2027, 2, 28), frozenset({"bank1"}))]:
        L.add_sender(e)
    t = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    c = MessageContext(Message("VCBANK", "0912000001", "hi", t, account="shop1"), L, tz)
    assert (c.sender_category, c.registry_problem) == ("unregistered", "account 'shop1' not allowed to use it")
    c = MessageContext(Message("VCBANK", "0912000001", "hi", t, account="bank1"), L, tz)
    assert (c.sender_category, c.registry_problem) == ("CSKH", None)
    c = MessageContext(Message("VCBANK", "0912000001", "hi", t - timedelta(days=500), account="bank1"), L, tz)
    assert c.registry_problem == "registration valid from 2025-01-01"
