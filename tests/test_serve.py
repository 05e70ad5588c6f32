"""`telfilter serve` as a process: SMPP and SIP listening, verdict log, live rule reload
(a broken edit keeps the old rules and says why with file:line:col; a good edit takes effect)."""
import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import smpplib.client
import smpplib.gsm

from benchmarks import ports
from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import CONFIG, ROOT

NEW_RULE = '''# test rule
[[rule]]
symbol = "TEST_FORBIDDEN_WORD"
description = "test"
applies_to = ["sms-mt"]
action = "drop"
smpp_status = "ESME_RX_R_APPN"
[rule.when]
keywords = ["xyzzy"]
[[rule.examples.hit]]
text = "say xyzzy"
[[rule.examples.miss]]
text = "say hello"
'''


def free_port(kind=socket.SOCK_STREAM):
    return ports.free_port(kind)


def free_sip_port():
    """A port free for both UDP and TCP: the SIP screen listens on both (RFC 3261 §18)."""
    return ports.free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM)


def wait_for(pred, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def wait_ready(p, ready, log, timeout=60):
    """Wait for a serve a test started to write its ready file; when it does not (it failed, or a loaded machine
    kept it longer than `timeout`), stop it before failing: a test never leaves a serve running."""
    if wait_for(lambda: ready.exists() or p.poll() is not None, timeout) and ready.exists():
        return
    if p.poll() is None:
        p.kill()
    p.wait()
    raise AssertionError(f"serve not ready in {timeout} s (exit {p.returncode}): {log.read_text()}")


_n = [0]


def submit(port, text):
    _n[0] += 1
    text = f"{text} {_n[0]}"           # distinct texts: FLOOD_SAME_CONTENT must not interfere
    c = smpplib.client.Client("127.0.0.1", port, timeout=5)
    c.connect()
    c.bind_transceiver(system_id="t", password="pw")
    parts, enc, esm = smpplib.gsm.make_parts(text)
    c.send_message(source_addr_ton=1, source_addr="84901234567", dest_addr_ton=1, destination_addr="84912345678",
                   short_message=parts[0], data_coding=enc, esm_class=esm)
    st = c.read_pdu().status
    c.unbind()
    c.disconnect()
    return st



def _stop(p, sim):
    """SIGTERM the serve process (killed if it has not exited in 10 s), then stop the simulator."""
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
    sim.stop()


def test_serve_reload_and_sip(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    smpp_port, sip_port, ev_port = free_port(), free_sip_port(), free_port()
    import zmq
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"verdict")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.connect(f"tcp://127.0.0.1:{ev_port}")
    log = tmp_path / "verdicts.jsonl"
    ready = tmp_path / "ready"
    err = open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", tmp_path / "data",
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--esme-account", "t:pw", "--sip-listen", f"127.0.0.1:{sip_port}",
                          "--sip-next-hop", "127.0.0.1:9", "--sip-allow-networks", "127.0.0.0/8",
                          "--log", log, "--ready-file", ready, "--events", f"tcp://127.0.0.1:{ev_port}"], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(ready.exists), (tmp_path / "stderr.log").read_text()
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        assert submit(smpp_port, "say xyzzy please") == 0
        # the verdict event stream (ZeroMQ PUB) carries the same records as the log; a
        # subscriber that joins late misses earlier events (PUB/SUB), so retry a few times
        sub.setsockopt(zmq.RCVTIMEO, 500)
        got = None
        for _ in range(10):
            try:
                got = sub.recv_multipart()
                break
            except zmq.Again:
                submit(smpp_port, "hello again")
        assert got is not None and got[0] == b"verdict" and json.loads(got[1])["kind"] == "sms"
        # a broken edit: refused, old rules stay, the error names file:line:col
        rf = cfg / "rules" / "50-test.toml"
        rf.write_text(NEW_RULE.replace('keywords = ["xyzzy"]', 'keywrds = ["xyzzy"]'))
        assert wait_for(lambda: "50-test.toml:9:1: unknown condition 'keywrds'" in (tmp_path / "stderr.log").read_text())
        assert submit(smpp_port, "say xyzzy please") == 0
        # a good edit takes effect without a restart
        rf.write_text(NEW_RULE)
        assert wait_for(lambda: "rules reloaded from" in (tmp_path / "stderr.log").read_text(), timeout=10)
        assert submit(smpp_port, "say xyzzy please") == 0x66
        # SIGHUP reloads too (rules, lists, model) and the process keeps serving
        p.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert p.poll() is None
        # SIP: a request is answered on the SIP port (400 for junk with a Via)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(3)
        u.sendto(f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{u.getsockname()[1]};branch=z9hG4bKx;rport\r\n"
                 "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode(), ("127.0.0.1", sip_port))
        assert u.recv(4096).startswith(b"SIP/2.0 400")
        # the verdict log is written off the message path: wait for the line rather than race it (whole lines only:
        # the log is read while serve appends to it, and a write is not atomic for a reader past a page boundary)
        assert wait_for(lambda: any(l["kind"] == "sms" and [h["symbol"] for h in l["hits"]] == ["TEST_FORBIDDEN_WORD"]
                                    for l in map(json.loads, log.read_text().split("\n")[:-1])))
    finally:
        _stop(p, sim)
        sub.close()
    assert p.returncode == 0


def test_running_serve_sees_cli_list_changes_and_keeps_its_registrations(tmp_path):
    """`lists add` while serve runs: the change is in force within seconds, no SIGHUP; a DNC
    journal line written in between is kept (in memory: test_catch_up_applies_lines_appended_during_a_reload)."""
    from engine.lists import ListStore
    from .conftest import run_cli
    data = tmp_path / "data"
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    smpp_port = free_port()
    ready = tmp_path / "ready"
    err = open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data, "-v",
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                          "--ready-file", ready], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(ready.exists), (tmp_path / "stderr.log").read_text()
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        assert submit(smpp_port, "hello there") == 0
        ListStore(data).append_delta("add", 84900000001, "SV")      # as serve's own 5656 handling does
        r = run_cli("lists", "add", "blacklist", "84901234567", "--data-dir", data)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: submit(smpp_port, "hello there") == 0x0A, timeout=10)   # ESME_RINVSRCADR
        assert 84900000001 in ListStore(data).load().dnc_s
        assert "lists reloaded" in (tmp_path / "stderr.log").read_text()
    finally:
        _stop(p, sim)
    assert p.returncode == 0
    assert not ready.exists()           # stopped: not ready (found by a first trial: it stayed after a drain)


def test_dnc_registrations_through_a_real_serve_racing_with_imports(tmp_path):
    """200 `DK DNC` MOs from the SMSC through a running serve while the operator imports a DNC
    file again and again: all 200 end on the list (issue: 7 of 300 were lost)."""
    from engine.lists import ListStore
    data = tmp_path / "data"
    store = ListStore(data)
    csv = ("number,channel\n" + "".join(f"09140{i:05d},SV\n" for i in range(50))).encode()
    store.import_csv("dnc", csv)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    smpp_port = free_port()
    ready = tmp_path / "ready"
    err = open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data,
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--sip-listen", "off", "--log", tmp_path / "v.jsonl", "--ready-file", ready],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(ready.exists), (tmp_path / "stderr.log").read_text()
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        imports = 0
        for batch in range(20):
            for i in range(batch * 10, batch * 10 + 10):
                assert sim.run(sim.sim.send_mo, f"8491300{i:04d}", "5656", "DK DNC")
            store.import_csv("dnc", csv)
            imports += 1

        def registered():
            s = store.load().dnc_s
            return all(84913000000 + i in s for i in range(200))
        assert wait_for(registered, timeout=30), \
            f"{sum(84913000000 + i not in store.load().dnc_s for i in range(200))} of 200 lost after {imports} imports"
    finally:
        _stop(p, sim)
    assert p.returncode == 0
