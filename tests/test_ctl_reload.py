"""`telfilter ctl reload accounts|sip` against a real `telfilter serve` process.

ESME accounts: a bad smpp.toml changes nothing and is reported as smpp.toml:LINE; a good one
lets a new account bind, unbinds the removed account's live bind (and refuses its next bind),
applies a changed throughput to a bind that stays; a changed password unbinds too. sip.toml: a
bad file changes nothing (sip.toml:LINE), a new next hop takes the next INVITE, listen is
reported as needing a restart. `ctl reload` with no PART reports every part.

Servers run on 127.0.0.1 (and a Unix socket in the test's tmp dir) and are stopped."""
import json
import shutil
import socket
import subprocess
import sys

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from engine.app import build
from engine.smpp_proxy.accounts import hash_password
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import CONFIG, ROOT
from .sip_helpers import invite
from .test_control import _stop, ctl
from .test_serve import free_port, wait_for, wait_ready

H1, H2 = hash_password("pw1", iterations=1000), hash_password("pw2", iterations=1000)


def _account(sid, h, **kw):
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in kw.items())
    return f'\n[[account]]\nsystem_id = "{sid}"\npassword_hash = "{h}"\n{extra}'


def _serve(tmp_path, cfg, sim_port):
    port = free_port()
    ready = tmp_path / "ready"
    err = open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", tmp_path / "data",
                          "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim_port}",
                          "--sip-listen", "127.0.0.1:0", "--log", tmp_path / "verdicts.jsonl", "--ready-file", ready],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    wait_ready(p, ready, tmp_path / "stderr.log")
    ports = dict(line.split() for line in ready.read_text().splitlines())
    return p, port, int(ports["sip"])


def _bind(port, sid, pw):
    c = smpplib.client.Client("127.0.0.1", port, timeout=10)
    c.connect()
    c.bind_transceiver(system_id=sid, password=pw)
    return c


def _submit_status(c, n):
    parts, enc, esm = smpplib.gsm.make_parts(f"hello {n}")
    c.send_message(source_addr_ton=1, source_addr="84901234567", dest_addr_ton=1, destination_addr="84912345678",
                   short_message=parts[0], data_coding=enc, esm_class=esm)
    while True:
        pdu = c.read_pdu()
        if pdu.command == "submit_sm_resp":
            return pdu.status


def _bind_status(port, sid, pw):
    try:
        _bind(port, sid, pw).disconnect()
        return 0
    except smpplib.exceptions.PDUError as e:
        return e.args[1]


def test_ctl_reload_accounts(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    base = (cfg / "smpp.toml").read_text()
    (cfg / "smpp.toml").write_text(base + _account("a1", H1) + _account("a2", H2))
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, port, _ = _serve(tmp_path, cfg, sim.port)
    clients = []
    try:
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        a1, a2 = _bind(port, "a1", "pw1"), _bind(port, "a2", "pw2")
        clients += [a1, a2]
        assert _submit_status(a1, 1) == 0 and _submit_status(a1, 2) == 0
        assert _bind_status(port, "a3", "pw1") == smpplib.consts.SMPP_ESME_RINVPASWD
        # a bad file: refused with file:line, nothing changes (a2 still submits, a3 still unknown)
        (cfg / "smpp.toml").write_text(base + _account("a1", H1, throughput=1) + _account("a3", H1, throughtput=5))
        r = ctl(tmp_path, "reload", "accounts")
        assert r.returncode == 1, r.stdout + r.stderr
        ans = json.loads(r.stdout)
        assert ans["accounts"]["ok"] is False and list(ans) == ["accounts", "ok", "error"]
        line = next(i for i, t in enumerate((cfg / "smpp.toml").read_text().splitlines(), 1) if "throughtput" in t)
        assert f"smpp.toml:{line}:1: account #2 'a3': unknown key 'throughtput' (did you mean 'throughput'?)" in r.stderr
        (cfg / "smpp.toml").write_text(base + _account("a1", H1) + "\n[[account\n")
        r = ctl(tmp_path, "reload", "accounts")
        assert r.returncode == 1 and "smpp.toml:" in r.stderr and "Traceback" not in r.stderr
        assert _submit_status(a2, 3) == 0 and _submit_status(a1, 4) == 0
        assert _bind_status(port, "a3", "pw1") == smpplib.consts.SMPP_ESME_RINVPASWD
        # a good one: a2 removed (its live bind gets an unbind), a3 added, a1's throughput lowered
        (cfg / "smpp.toml").write_text(base + _account("a1", H1, throughput=1) + _account("a3", H1))
        r = ctl(tmp_path, "reload", "accounts")
        assert r.returncode == 0, r.stdout + r.stderr
        ans = json.loads(r.stdout)["accounts"]
        assert (ans["added"], ans["removed"], ans["changed"]) == (["a3"], ["a2"], ["a1"])
        assert [u["system_id"] for u in ans["unbound"]] == ["a2"] and ans["unbound"][0]["why"] == "account removed"
        assert "needs_restart" not in ans
        pdu = a2.read_pdu()
        assert pdu.command == "unbind"
        # the live a1 bind has the new limit: one token, the next submit at once is throttled
        statuses = [_submit_status(a1, 5 + i) for i in range(3)]
        assert smpplib.consts.SMPP_ESME_RTHROTTLED in statuses, statuses
        assert _bind_status(port, "a3", "pw1") == 0
        assert _bind_status(port, "a2", "pw2") == smpplib.consts.SMPP_ESME_RINVPASWD
        # a changed password unbinds the live bind; a server setting is reported as needing a restart
        a3 = _bind(port, "a3", "pw1")
        clients.append(a3)
        (cfg / "smpp.toml").write_text(base.replace("window = 200", "window = 150")
                                       + _account("a1", H1, throughput=1) + _account("a3", H2))
        r = ctl(tmp_path, "reload", "accounts")
        assert r.returncode == 0, r.stdout + r.stderr
        ans = json.loads(r.stdout)["accounts"]
        assert ans["unbound"] == [{"system_id": "a3", "peer": ans["unbound"][0]["peer"], "why": "password changed"}]
        assert ans["needs_restart"] == ["smsc_window"]
        assert a3.read_pdu().command == "unbind"
        assert _bind_status(port, "a3", "pw2") == 0
    finally:
        for c in clients:
            try:
                c.disconnect()
            except Exception:
                pass
        _stop(p)
        sim.stop()
    assert p.returncode == 0


def _uas():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    return s, s.getsockname()[1]


def _invite_arrives(uac, sip_port, uas, n):
    uac.sendto(invite(call_id=f"reload-{n}@127.0.0.1", via_port=uac.getsockname()[1]), ("127.0.0.1", sip_port))
    data = uas.recv(65536)
    return data.startswith(b"INVITE ") and f"reload-{n}@".encode() in data


def test_ctl_reload_sip_and_everything(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    uas_a, port_a = _uas()
    uas_b, port_b = _uas()
    uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uac.bind(("127.0.0.1", 0))
    sip_toml = (cfg / "sip.toml").read_text()
    (cfg / "sip.toml").write_text(sip_toml.replace('next_hop = ""', f'next_hop = "127.0.0.1:{port_a}"'))
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, _, sip_port = _serve(tmp_path, cfg, sim.port)
    try:
        assert _invite_arrives(uac, sip_port, uas_a, 1)
        # a bad network: refused with the line, the old next hop still in force
        bad = sip_toml.replace('next_hop = ""', f'next_hop = "127.0.0.1:{port_b}"').replace(
            '"10.0.0.0/8"', '"10.0.0.0/33"')
        (cfg / "sip.toml").write_text(bad)
        line = next(i for i, t in enumerate(bad.splitlines(), 1) if t.startswith("allow_networks"))
        r = ctl(tmp_path, "reload", "sip")
        assert r.returncode == 1 and f"sip.toml:{line}:1: [sip] allow_networks '10.0.0.0/33'" in r.stderr, r.stderr
        assert _invite_arrives(uac, sip_port, uas_a, 2)
        # a good one: the new next hop takes the next INVITE; listen needs a restart and is said so
        (cfg / "sip.toml").write_text(sip_toml.replace('next_hop = ""', f'next_hop = "127.0.0.1:{port_b}"')
                                      .replace('display_prefix = ""', 'display_prefix = "[?] "'))
        r = ctl(tmp_path, "reload", "sip")
        assert r.returncode == 0, r.stdout + r.stderr
        ans = json.loads(r.stdout)["sip"]
        assert ans["changed"] == ["next_hop", "display_prefix"] and ans["needs_restart"] == []
        assert ans["overridden_by_command_line"] == ["listen"]      # --sip-listen keeps deciding it
        assert _invite_arrives(uac, sip_port, uas_b, 3)
        # a UDP next hop of the other address family than the running listener: refused, the old one in force
        good = (cfg / "sip.toml").read_text()
        (cfg / "sip.toml").write_text(sip_toml.replace('next_hop = ""', 'next_hop = "[::1]:5999"'))
        r = ctl(tmp_path, "reload", "sip")
        assert r.returncode == 1 and "is IPv4 and the UDP next hop '[::1]:5999' IPv6" in r.stderr, r.stderr
        assert _invite_arrives(uac, sip_port, uas_b, 5)
        (cfg / "sip.toml").write_text(good)
        # `ctl reload` with no PART: every part, each with its result
        r = ctl(tmp_path, "reload")
        assert r.returncode == 0, r.stdout + r.stderr
        ans = json.loads(r.stdout)
        assert all(ans[k]["ok"] for k in ("rules", "lists", "model", "accounts", "sip")) and ans["ok"] is True
        # one part refused: the others still reloaded, the exit status says it
        (cfg / "sip.toml").write_text("[sip]\nnext_hopp = 1\n")
        r = ctl(tmp_path, "reload")
        ans = json.loads(r.stdout)
        assert r.returncode == 1 and ans["sip"]["ok"] is False and ans["rules"]["ok"] and ans["accounts"]["ok"]
        assert "sip.toml:2:1: unknown key [sip] next_hopp (did you mean 'next_hop'?)" in r.stderr
        assert _invite_arrives(uac, sip_port, uas_b, 4)
    finally:
        for s in (uas_a, uas_b, uac):
            s.close()
        _stop(p)
        sim.stop()
    assert p.returncode == 0


def test_apply_accounts_to_live_binds(tmp_path):
    """In-process: which live binds a new account set keeps (with its new limits) and which it
    unbinds, and that the token bucket keeps its tokens at a new rate."""
    from dataclasses import replace

    from engine.smpp_proxy.accounts import account_from_arg
    from engine.smpp_proxy.live_accounts import apply_accounts
    h = ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("a:pw", "b:pw", "n:pw")).start()
    clients = []
    try:
        for sid in ("a", "a", "a"):
            clients.append(_bind(h.port, sid, "pw"))
        tx = smpplib.client.Client("127.0.0.1", h.port, timeout=10)
        tx.connect()
        tx.bind_transmitter(system_id="b", password="pw")
        n = _bind(h.port, "n", "pw")
        clients += [tx, n]
        assert _submit_status(clients[0], 1) == 0
        old = h.proxy.accounts
        new = {"a": replace(old["a"], max_binds=2, throughput=7.0, window=3),
               "b": replace(old["b"], bind_types=("receiver", "transceiver")),
               "n": replace(old["n"], allowed_networks=("10.0.0.0/8",)),
               "c": account_from_arg("c:pw2", "test")}

        async def go():
            return apply_accounts(h.proxy, new)
        ans = h.call(go())
        assert (ans["added"], ans["removed"], sorted(ans["changed"])) == (["c"], [], ["a", "b", "n"])
        assert sorted((u["system_id"], u["why"]) for u in ans["unbound"]) == [
            ("a", "over max_binds 2"), ("b", "bind type no longer allowed"), ("n", "source network no longer allowed")]
        for c in (clients[2], tx, n):            # the latest `a` bind is the one over the limit
            assert c.read_pdu().command == "unbind"
        kept = h.proxy.binds["a"]
        assert len(kept) == 2 and all(s.account is new["a"] for s in kept)
        bucket = h.proxy.buckets["a"]
        assert bucket.rate == 7.0 and bucket.tokens <= bucket.burst
        assert _submit_status(clients[0], 2) == 0          # a kept bind still submits
        assert _bind_status(h.port, "c", "pw2") == 0 and h.proxy.accounts is h.proxy.settings.accounts
        # a submit crossing the unbind on the wire: refused as not bound, not forwarded
        before = len(h.sim.submits())
        assert _submit_status(n, 3) == smpplib.consts.SMPP_ESME_RINVBNDSTS
        assert len(h.sim.submits()) == before
    finally:
        for c in clients:
            try:
                c.disconnect()
            except Exception:
                pass
        h.stop()


def test_a_bind_checked_across_a_reload_binds_with_the_account_as_it_is_now(tmp_path):
    """The password check runs in a thread; a reload that lands meanwhile decides the bind."""
    from dataclasses import replace

    from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
    from engine.smpp_proxy.codec import constants as C
    from engine.smpp_proxy.codec import pdu as P
    from engine.smpp_proxy.live_accounts import apply_accounts
    from engine.smpp_proxy.server import EsmeSession, SmppProxy
    proxy = SmppProxy(build(data_dir=tmp_path / "data"), SmppSettings())
    then = account_from_arg("a:pw")

    def bind_across(now: dict):
        proxy.accounts.clear()
        proxy.accounts["a"] = then
        sess, sent = EsmeSession(proxy), []
        sess.peer, sess.send_pdu, sess.bind_pending = ("127.0.0.1", 1), sent.append, True
        apply_accounts(proxy, now)                  # lands while `then`'s password was being checked
        proxy._bind_checked(sess, P.BindTransceiver(sequence_number=1, system_id="a", password="pw"),
                            then, True, lambda ok: None)
        return sent[0].command_status, sess.account
    assert bind_across({}) == (C.ESME_RINVPASWD, None)                                     # removed
    assert bind_across({"a": account_from_arg("a:other")})[0] == C.ESME_RINVPASWD         # password changed
    wider = replace(then, window=7)
    assert bind_across({"a": wider}) == (0, wider)                                         # new limits


def test_ctl_reload_model_reads_telfilter_toml_again(tmp_path):
    """[ml] in telfilter.toml is read again on `ctl reload model`: turning the stage off is in force at
    once; a model path that holds no model is refused with the old model kept."""
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    p, _, _ = _serve(tmp_path, cfg, sim.port)
    try:
        before = json.loads(ctl(tmp_path, "stats").stdout)["model"]["version"]
        assert before is not None
        (cfg / "telfilter.toml").write_text(toml.replace('model = ""', 'model = "/nonexistent/model"', 1))
        r = ctl(tmp_path, "reload", "model")
        assert r.returncode == 1 and "not a model directory" in r.stdout + r.stderr, r.stdout + r.stderr
        assert json.loads(ctl(tmp_path, "stats").stdout)["model"]["version"] == before
        (cfg / "telfilter.toml").write_text(toml.replace("enabled = true", "enabled = false", 1))
        r = ctl(tmp_path, "reload", "model")
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(ctl(tmp_path, "stats").stdout)["model"]["version"] is None
    finally:
        _stop(p)
        sim.stop()


def test_a_reload_that_turns_receipt_after_resp_on_reports_the_account_changed():
    """`ctl reload accounts` applied a changed receipt_after_resp (routing reads proxy.accounts) but did not list
    the account as changed: its answer and log said nothing changed (review42)."""
    from dataclasses import replace
    from types import SimpleNamespace

    from engine.smpp_proxy.accounts import account_from_arg
    from engine.smpp_proxy.live_accounts import apply_accounts
    a = account_from_arg("k:pw", "test")
    proxy = SimpleNamespace(accounts={"k": a}, binds={}, buckets={}, _mo_index=None)
    ans = apply_accounts(proxy, {"k": replace(a, receipt_after_resp=True)})
    assert ans["changed"] == ["k"] and proxy.accounts["k"].receipt_after_resp


def test_a_reload_says_engine_settings_need_a_restart(tmp_path, caplog):
    """Found by the ops probe (stop 47): `ctl reload` (and SIGUSR1) read telfilter.toml again for [ml] and answered ok
    when [engine] timezone or shortcode had changed, which are read at start only: the operator was told nothing and
    the old time zone kept judging advertising hours. Now said: a warning and `needs_restart`."""
    import asyncio
    import logging

    from engine.control_reload import ReloadCommands
    from engine.serve_reload import _reload_model
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    pipe = build(config_dir=cfg, data_dir=tmp_path / "data", with_model=False, persist=False)
    toml = (cfg / "telfilter.toml").read_text()
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        assert asyncio.run(_reload_model(pipe)) is None
        assert pipe.engine_needs_restart == []
        (cfg / "telfilter.toml").write_text(toml.replace('\ntimezone = "Asia/Ho_Chi_Minh"', '\ntimezone = "Asia/Bangkok"', 1)
                                            .replace('shortcode = "5656"', 'shortcode = "5657"', 1))
        rc = ReloadCommands.__new__(ReloadCommands)
        rc.pipe = pipe
        ans = asyncio.run(rc._reload_model())
    assert ans["ok"] and ans["needs_restart"] == ["timezone", "shortcode"], ans
    assert pipe.settings.timezone == "Asia/Ho_Chi_Minh"          # (still the one in force)
    assert "[engine] timezone, shortcode changed; in force after a restart" in caplog.text
