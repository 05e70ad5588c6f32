"""One file-descriptor budget for every connection cap of `serve` (engine/fdbudget.py FdBudget): the
SMPP proxy's max_connections and the SIP screen's inbound and outbound TCP caps, with a reserve, fit within
RLIMIT_NOFILE -- the soft limit raised to the hard one first where allowed, else the caps lowered in proportion
(a warning naming each), or the start refused when even that leaves too few. Before, SMPP's cap alone was kept
under the limit: under `ulimit -n 1024` 1,000 idle SIP TCP connections left no fd for an ESME's bind (audit,
reproduced end to end below). Servers on 127.0.0.1, stopped at the end."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from engine.fdbudget import FdBudget, FdBudgetError

from .conftest import ROOT
from .test_sip_tcp_outbound_caps import SMSC, _bind  # one SMSC script and bind probe for both


def budget(soft, reserve=80):
    b = FdBudget()
    b.soft, b.hard, b.reserve = soft, soft, reserve          # as _setup would find them, without touching the process
    return b


class Holder:
    def __init__(self):
        self.got = []

    def apply(self, granted):
        self.got.append(granted)


def test_caps_that_fit_are_granted_as_configured(caplog):
    b, smpp = budget(10_000), Holder()
    assert b.claim("smpp", {"SMPP max_connections": 1000}, smpp.apply) == {"SMPP max_connections": 1000}
    assert b.claim("sip", {"SIP in": 1000, "SIP out": 1000}) == {"SIP in": 1000, "SIP out": 1000}
    assert smpp.got == [] and "file descriptor limit" not in caplog.text


def test_caps_over_the_limit_are_shared_in_proportion_and_earlier_claims_are_told(caplog):
    b, smpp = budget(1024), Holder()
    assert b.claim("smpp", {"SMPP max_connections": 1000}, smpp.apply) == {"SMPP max_connections": 944}
    sip = b.claim("sip", {"SIP max_tcp_connections": 1000, "SIP max_tcp_out_connections": 1000})
    # 944 places: 16 each, the 896 left in proportion to what each asked beyond that
    assert sip == {"SIP max_tcp_connections": 314, "SIP max_tcp_out_connections": 314}
    assert smpp.got == [{"SMPP max_connections": 314}]
    assert 314 * 3 + 80 <= 1024
    assert "SMPP max_connections 1000 -> 314, SIP max_tcp_connections 1000 -> 314, " \
           "SIP max_tcp_out_connections 1000 -> 314" in caplog.text
    # a cap under MIN_CAP keeps it; the others get 16 and share the rest by what they asked beyond 16
    b2 = budget(1024)
    b2.claim("smpp", {"SMPP max_connections": 50})
    got = b2.claim("sip", {"SIP in": 2000, "SIP out": 10})
    assert got == {"SIP in": 16 + (944 - 16 - 16 - 10) * 1984 // (34 + 1984), "SIP out": 10}
    assert sum(b2.granted.values()) <= 944 and b2.granted["SMPP max_connections"] >= 16


def test_a_component_claiming_again_replaces_its_claim():
    b = budget(1024)
    b.claim("sip", {"SIP in": 1000, "SIP out": 1000})
    assert b.claim("sip", {"SIP in": 100, "SIP out": 100}) == {"SIP in": 100, "SIP out": 100}


def test_a_limit_too_low_for_any_useful_cap_refuses_to_start():
    b = budget(120)
    b.claim("smpp", {"SMPP max_connections": 1000})          # 40 places: still of use, lowered
    with pytest.raises(FdBudgetError, match=r"file descriptor limit 120 \(RLIMIT_NOFILE, hard limit 120\) leaves 40 "
                                            r"for connections .*too few .*not starting. Raise the hard limit"):
        b.claim("sip", {"SIP max_tcp_connections": 1000, "SIP max_tcp_out_connections": 1000})
    assert isinstance(FdBudgetError("x"), OSError)             # serve prints it and exits 2 (cmd_serve)
    assert list(b.claims) == ["smpp"]                          # the refused claim is not kept


PROC = r"""
import asyncio, json, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
from engine.app import build
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.fdbudget import FD_BUDGET
from engine.smpp_proxy.admission import ConnectionCaps
caps = ConnectionCaps(1000, 64)
smpp_alone = caps.total
h = SipHarness(build(data_dir=sys.argv[3], with_model=False, persist=False),
               SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"])).start()
out = {"soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "smpp_alone": smpp_alone, "smpp": caps.total,
       "sip_in": h.screen.fd_cap_in, "sip_out": h.screen.fd_cap_out, "reserve": FD_BUDGET.reserve}
h.stop()
print(json.dumps(out))
"""


def _in_process(soft, hard, tmp_path):
    p = subprocess.run([sys.executable, "-c", PROC, str(soft), str(hard), str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1]), p.stderr


def test_smpp_and_sip_caps_are_one_budget_under_the_fd_limit(tmp_path):
    got, err = _in_process(1024, 1024, tmp_path)
    assert got["soft"] == 1024
    assert got["smpp_alone"] == 1024 - got["reserve"]            # SMPP alone: as before, under the limit
    assert got["smpp"] + got["sip_in"] + got["sip_out"] + got["reserve"] <= 1024
    assert min(got["smpp"], got["sip_in"], got["sip_out"]) >= 16
    assert "SIP max_tcp_out_connections 1000 ->" in err


def test_the_soft_limit_is_raised_to_the_hard_one_first(tmp_path):
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("needs a hard fd limit of 4,096 or more")
    got, err = _in_process(512, 4096, tmp_path)
    assert got["soft"] == 4096 and (got["smpp"], got["sip_in"], got["sip_out"]) == (1000, 1000, 1000)
    assert "file descriptor limit" not in err


def _serve(tmp_path, ulimit, smsc_port=None):
    ready = tmp_path / "ready"
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp_path / "data"),
           "--smpp-listen", "127.0.0.1:0", "--esme-account", "esme1:secret", "--sip-listen", "127.0.0.1:0",
           "--sip-allow-networks", "127.0.0.0/8", "--log", "/dev/null", "--ready-file", str(ready)]
    if smsc_port:
        cmd += ["--smsc", f"127.0.0.1:{smsc_port}", "--smsc-system-id", "x"]
    return subprocess.Popen(["bash", "-c", f'ulimit -n {ulimit} && exec "$@"', "serve", *cmd], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"),
                            env={**os.environ, "TELFILTER_SMSC_PASSWORD": "y"}), ready


def wait_for(cond, seconds=30.0):
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_serve_under_ulimit_1024_binds_smpp_with_1000_idle_sip_connections(tmp_path):
    """The audit's reproduction: 20 addresses x 50 idle SIP TCP connections (the per-source cap), 8 unbound SMPP
    connections, then an ESME binds."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1500:
        pytest.skip("this test process needs 1,500 file descriptors for its idle connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    smsc = subprocess.Popen([sys.executable, "-c", SMSC, "x", str(ROOT)], stdout=subprocess.PIPE, text=True)
    procs, socks = [smsc], []
    try:
        serve, ready = _serve(tmp_path, 1024, int(smsc.stdout.readline()))
        procs.append(serve)
        assert wait_for(ready.exists), (tmp_path / "stderr.log").read_text()
        ports = dict(line.split() for line in ready.read_text().splitlines())
        smpp_port, sip_port = int(ports["smpp"]), int(ports["sip"])
        assert _bind(smpp_port)
        for n in range(1000):
            s = socket.socket()
            s.bind((f"127.0.9.{n // 50 + 1}", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", sip_port))
            socks.append(s)
        socks += [socket.create_connection(("127.0.0.1", smpp_port), timeout=5) for _ in range(8)]
        time.sleep(1.0)
        assert _bind(smpp_port)
        assert len(os.listdir(f"/proc/{serve.pid}/fd")) < 1024 - 32
        err = (tmp_path / "stderr.log").read_text()
        assert "file descriptor limit 1024 (RLIMIT_NOFILE, hard limit 1024)" in err
        assert "SIP max_tcp_connections 1000 ->" in err
    finally:
        for s in socks:
            s.close()
        for p in procs:
            p.kill()
            p.wait(10)


def test_serve_refuses_to_start_when_the_fd_limit_leaves_too_few_for_the_caps(tmp_path):
    serve, ready = _serve(tmp_path, 120)
    try:
        assert serve.wait(30) == 2
    finally:
        serve.kill()
        serve.wait(10)
    err = (tmp_path / "stderr.log").read_text()
    assert "telfilter serve: error: file descriptor limit 120 (RLIMIT_NOFILE, hard limit 120)" in err
    assert "not starting. Raise the hard limit" in err and not ready.exists()



# ------------------------------------------------------------ review 74: claims released; a reload claims again
def test_a_released_claim_gives_its_share_back_and_the_others_are_told():
    b, smpp = budget(1024), Holder()
    b.claim("smpp", {"SMPP max_connections": 1000}, smpp.apply)
    b.claim("sip", {"SIP in": 1000, "SIP out": 1000})
    assert smpp.got == [{"SMPP max_connections": 314}]
    b.release("sip")
    assert smpp.got[-1] == {"SMPP max_connections": 944} and list(b.claims) == ["smpp"]
    assert b.claim("sip", {"SIP in": 10, "SIP out": 10}) == {"SIP in": 10, "SIP out": 10}
    b.release("nobody")                                         # nothing claimed: nothing to do


def test_a_release_by_a_component_whose_claim_was_replaced_leaves_the_new_one():
    """Two SIP screens in one test process both claim as "sip": the first one's stop must not drop the second's."""
    b, first, second = budget(1024), Holder(), Holder()
    b.claim("sip", {"SIP in": 500}, first.apply)
    b.claim("sip", {"SIP in": 600}, second.apply)
    b.release("sip", first.apply)
    assert b.claims["sip"][0] == {"SIP in": 600}
    b.release("sip", second.apply)
    assert b.claims == {}


def test_a_claim_whose_component_is_gone_is_released_at_the_next_claim():
    b, smpp = budget(1024), Holder()
    b.claim("smpp", {"SMPP max_connections": 1000}, smpp.apply)
    del smpp                                                    # dropped without a stop
    assert b.claim("sip", {"SIP in": 400, "SIP out": 400}) == {"SIP in": 400, "SIP out": 400}     # 800 of 944
    assert list(b.claims) == ["sip"]


RESTART = r"""
import asyncio, gc, json, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (600, 600))
from engine.app import build
from engine.fdbudget import FD_BUDGET
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.smpp_proxy.admission import ConnectionCaps
from engine.smpp_proxy.server import SmppProxy, SmppSettings
pipe = build(data_dir=sys.argv[1], with_model=False, persist=False)
out = {}
proxy = SmppProxy(pipe, SmppSettings(max_connections=1000))
out["smpp_first"] = proxy.caps.total
asyncio.run(proxy.stop())
out["after_smpp_stop"] = sorted(FD_BUDGET.claims)
h = SipHarness(pipe, SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"])).start()
out["sip"] = (h.screen.fd_cap_in, h.screen.fd_cap_out)
h.stop()
out["after_sip_stop"] = sorted(FD_BUDGET.claims)
out["smpp_again"] = ConnectionCaps(1000, 64).total
out["avail"] = 600 - FD_BUDGET.reserve
print(json.dumps(out))
"""


def test_a_stopped_smpp_proxy_or_sip_screen_leaves_its_fds_to_a_restart_in_the_same_process(tmp_path):
    """Before, claims were never released: a SIP screen started and stopped in this process still held 2,000 fds of
    claims, and a later SMPP-only start was lowered (or refused) for caps nothing used (review 74, r2)."""
    p = subprocess.run([sys.executable, "-c", RESTART, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    assert got["smpp_first"] == got["avail"] and got["after_smpp_stop"] == []
    assert got["sip"] == [got["avail"] // 2] * 2                # the stopped proxy's share is not held against it
    assert got["after_sip_stop"] == [] and got["smpp_again"] == got["avail"]


def _reload(screen, **caps):
    from dataclasses import replace

    from engine.sip_screen.live_settings import apply_sip_settings
    return apply_sip_settings(screen, replace(screen.s, **caps), {})


def test_a_reload_raises_the_sip_tcp_caps_above_their_start_values_within_the_budget(tmp_path, monkeypatch):
    """Before, `ctl reload sip` could not raise max_tcp_connections / max_tcp_out_connections above their values
    at start however many fds were free: they were held at what the budget granted then (review 74, r1)."""
    import engine.fdbudget
    from engine.app import build
    from engine.sip_screen.harness import SipHarness
    from engine.sip_screen.server import SipSettings
    monkeypatch.setattr(engine.fdbudget, "FD_BUDGET", budget(10_000))
    h = SipHarness(build(data_dir=tmp_path, with_model=False, persist=False),
                   SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], max_tcp_connections=2,
                               max_tcp_per_source=100, max_tcp_out_connections=2)).start()
    scr, socks = h.screen, []
    try:
        r = h.run(lambda: _reload(scr, max_tcp_connections=6, max_tcp_out_connections=7))
        assert set(r["changed"]) == {"max_tcp_connections", "max_tcp_out_connections"}
        assert (scr.fd_cap_in, scr.fd_cap_out) == (6, 7)
        assert engine.fdbudget.FD_BUDGET.claims["sip"][0] == {"SIP max_tcp_connections": 6,
                                                               "SIP max_tcp_out_connections": 7}
        socks = [socket.create_connection(("127.0.0.1", h.port)) for _ in range(5)]
        assert wait_for(lambda: h.run(lambda: scr.tcp_inbound) == 5, 5)
        assert scr.stats["tcp_refused"] == 0
    finally:
        for s in socks:
            s.close()
        h.stop()
    assert "sip" not in engine.fdbudget.FD_BUDGET.claims


def test_a_reload_the_fd_limit_cannot_hold_keeps_the_caps_in_force_and_says_why(tmp_path, monkeypatch, caplog):
    import engine.fdbudget
    from engine.app import build
    from engine.sip_screen.harness import SipHarness
    from engine.sip_screen.server import SipSettings
    b = budget(120)                                             # 40 places after the reserve
    monkeypatch.setattr(engine.fdbudget, "FD_BUDGET", b)
    b.claim("smpp", {"SMPP max_connections": 10})
    h = SipHarness(build(data_dir=tmp_path, with_model=False, persist=False),
                   SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], max_tcp_connections=8,
                               max_tcp_out_connections=8)).start()
    scr = h.screen
    try:
        r = h.run(lambda: _reload(scr, max_tcp_connections=1000, max_tcp_out_connections=1000))
        assert r["changed"] == [] and (scr.s.max_tcp_connections, scr.s.max_tcp_out_connections) == (8, 8)
        assert (scr.fd_cap_in, scr.fd_cap_out) == (8, 8) and b.granted["SMPP max_connections"] == 10
        msg = next(r.getMessage() for r in caplog.records if "not applied" in r.getMessage())
        assert "sip.toml max_tcp_connections = 1000, max_tcp_out_connections = 1000: not applied, the caps in " \
               "force (8, 8) are kept: file descriptor limit 120 (RLIMIT_NOFILE, hard limit 120) leaves 30 for " \
               "connections after a reserve of 80 and the 10 the other caps keep: too few" in msg \
               and "not starting" not in msg
        # what fits is applied: 10 + 20 + 8 = 38 of 40
        h.run(lambda: _reload(scr, max_tcp_connections=20))
        assert (scr.s.max_tcp_connections, scr.fd_cap_in, scr.fd_cap_out) == (20, 20, 8)
    finally:
        h.stop()


def test_a_reload_of_the_sip_caps_never_shrinks_the_running_smpp_cap():
    """`ctl reload sip` with larger TCP caps gets what the SMPP proxy's running cap leaves, never a share taken
    from it (a review saw SMPP's cap go from 743 to 16 on a reload)."""
    b, smpp, sip = budget(900, reserve=80), Holder(), Holder()
    first = b.claim("smpp", {"SMPP max_connections": 500}, smpp.apply)
    b.claim("sip", {"SIP in": 100, "SIP out": 100}, sip.apply)
    assert first == {"SMPP max_connections": 500} and smpp.got == []
    got = b.claim("sip", {"SIP in": 5000, "SIP out": 5000}, sip.apply, keep_others=True)
    assert smpp.got == [] and b.granted["SMPP max_connections"] == 500
    assert sum(got.values()) <= 900 - 80 - 500 and min(got.values()) >= 16
    with pytest.raises(FdBudgetError):              # SMPP's share leaves too little: the reload is refused
        budget_b = budget(600, reserve=80)
        budget_b.claim("smpp", {"SMPP max_connections": 500}, smpp.apply)
        budget_b.claim("sip", {"SIP in": 100, "SIP out": 100}, sip.apply, keep_others=True)


def test_a_reload_lowering_the_sip_caps_gives_the_smpp_cap_its_share_back():
    """SMPP lowered at start for SIP's caps gets back what a reload lowering SIP's caps leaves."""
    b = budget(1000, reserve=100)
    smpp = {}
    ap = lambda g: smpp.update(g)
    b.claim("smpp", {"SMPP max_connections": 800}, ap)
    b.claim("sip", {"SIP in": 400, "SIP out": 400}, None)     # start: all shared in proportion
    lowered = b.granted["SMPP max_connections"]
    assert lowered < 800
    b.claim("sip", {"SIP in": 20, "SIP out": 20}, None, keep_others=True)   # reload lowering SIP
    assert b.granted["SMPP max_connections"] == 800, \
        f"SIP now takes 40, SMPP's 800 fits in 900, but SMPP stays at {b.granted['SMPP max_connections']}"
