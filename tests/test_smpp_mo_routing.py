"""MO routing by destination prefix (engine/smpp_proxy/routing.py `_mo_target`): the bound account
whose prefix is the longest match and has a receiver with room; a shorter match when the longest
has none; the index of prefixes made again when the accounts are reloaded."""
import itertools

from engine.smpp_proxy.live_accounts import apply_accounts
from engine.smpp_proxy.routing import DeliveryRouting


class _Acct:
    def __init__(self, sid, prefixes, window=2):
        self.system_id, self.mo_prefixes, self.window = sid, tuple(prefixes), window


class _Sess:
    def __init__(self, acct):
        self.account, self.window, self.closed = acct, {}, False
        self.last_timeout = self.last_rx = 0.0          # (not stalled: routing._receiving)
        self.state = type("St", (), {"can_receive": True})()
        self.transport = type("T", (), {"is_closing": staticmethod(lambda: False)})()


def _router(accounts):
    r = DeliveryRouting.__new__(DeliveryRouting)
    r.accounts = {a.system_id: a for a in accounts}
    r.binds = {a.system_id: [_Sess(a)] for a in accounts}
    r._rr = itertools.count()
    return r


def test_the_longest_prefix_with_room_wins():
    r = _router([_Acct("all", [""]), _Acct("vn", ["84"]), _Acct("shop", ["8490", "8491"])])
    owner = lambda dest: r._mo_target(dest).account.system_id     # noqa: E731
    assert owner("84901234") == "shop" and owner("84911234") == "shop"
    assert owner("84921234") == "vn" and owner("4412345") == "all" and owner("") == "all"
    r.binds["shop"][0].window = {1: None, 2: None}                  # its window is full
    assert owner("84901234") == "vn"
    assert r._mo_target("84901234", room=3).account.system_id == "vn"   # three parts need an empty window
    del r.binds["vn"]                                               # not bound
    assert owner("84921234") == "all"


def test_reloaded_accounts_route_by_their_new_prefixes():
    from engine.smpp_proxy.accounts import Account
    acct = lambda sid, pfx: Account(sid, "x", mo_prefixes=(pfx,))      # noqa: E731
    r = _router([acct("a", "849"), acct("b", "84")])
    assert r._mo_target("84901").account.system_id == "a"
    r.binds, r.buckets = {}, {}
    apply_accounts(r, {"a": acct("a", "8490"), "b": acct("b", "84901")})
    r.binds = {sid: [_Sess(a)] for sid, a in r.accounts.items()}
    assert r._mo_target("84901").account.system_id == "b"
