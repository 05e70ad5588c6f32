"""`telfilter ctl` against a real `telfilter serve` process: lists changes through the server
(in force for the next message, durable across a restart), reload with a broken rule file
(errors as path:line:col, old rules kept), stats, drain, and the errors when nothing listens.

Every test starts its servers on 127.0.0.1 (and a Unix socket in its tmp dir) and stops them."""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import smpplib.client
import smpplib.gsm

from engine.app import build
from engine.control import MAX_CONNECTIONS, MAX_LINE
from engine.control_client import request
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import CONFIG, ROOT
from .test_serve import NEW_RULE, free_port, wait_for, wait_ready

AD = "[QC] Giam gia 50% cuoi tuan. TC gui 5656"


def _serve(tmp_path, sim_port, cfg=None, tag="1"):
    port = free_port()
    ready = tmp_path / f"ready{tag}"
    err = open(tmp_path / f"stderr{tag}.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                          *(["--config", cfg] if cfg else []),
                          "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim_port}",
                          "--esme-account", "t:pw", "--sip-listen", "off",
                          "--log", tmp_path / "verdicts.jsonl", "--ready-file", ready],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    wait_ready(p, ready, tmp_path / f"stderr{tag}.log")
    return p, port


def _stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def ctl(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "engine.cli", "ctl", "--data-dir", tmp_path / "data", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def _send_ad(port, recipient, n):
    c = smpplib.client.Client("127.0.0.1", port, timeout=10)
    c.connect()
    c.bind_transceiver(system_id="t", password="pw")
    parts, enc, esm = smpplib.gsm.make_parts(f"{AD} {n}")
    c.send_message(source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1, destination_addr=recipient,
                   short_message=parts[0], data_coding=enc, esm_class=esm)
    c.read_pdu()
    c.unbind()
    c.disconnect()


def _ad_verdicts(tmp_path):
    log = tmp_path / "verdicts.jsonl"
    if not log.exists():
        return []
    # (whole lines: read while serve appends, and a write is not atomic for a reader past a page boundary)
    return [{h["symbol"] for h in r["hits"]} for r in map(json.loads, log.read_text().split("\n")[:-1])
            if r.get("kind") == "sms"]


def test_ctl_dnc_add_in_force_at_once_and_survives_restart(tmp_path):
    from engine.lists import ListStore
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    # the QC brandname is registered before serve starts: no snapshot changes while it runs, so
    # only the server's own in-memory change can put the DNC registration in force
    ListStore(tmp_path / "data").add("senders", "SHOPABC", "SV", ["Shop", "QC", "", "", ""])
    p, port = _serve(tmp_path, sim.port)
    try:
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        _send_ad(port, "84912000777", 1)
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 1)
        assert "AD_TO_DNC" not in _ad_verdicts(tmp_path)[0]
        # the DNC registration: the very next ad to that number is judged against it
        r = ctl(tmp_path, "lists", "add", "dnc", "0912000777", "--channel", "S")
        assert r.returncode == 0, r.stderr
        _send_ad(port, "84912000777", 2)
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 2)
        assert "AD_TO_DNC" in _ad_verdicts(tmp_path)[1]
        # other kinds go through the server's ListStore write, in force when answered
        r = ctl(tmp_path, "lists", "add", "blacklist", "spam.example")
        assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, r.stderr
        # stats answers with the list sizes serve holds, the binds and the SMSC links (first-use review: only
        # /metrics said those)
        c = smpplib.client.Client("127.0.0.1", port, timeout=10)
        c.connect()
        c.bind_transceiver(system_id="t", password="pw")
        r = ctl(tmp_path, "stats")
        c.unbind()
        c.disconnect()
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["smpp"]["binds"] == {"t": 1}, st["smpp"]
        assert st["smpp"]["smsc_links"] == [{"smsc": f"127.0.0.1:{sim.port}", "kind": "transceiver", "bound": True,
                                             "window": 0}], st["smpp"]
        assert st["lists"]["dnc"]["S_only"] == 1 and st["lists"]["senders"]["QC"] == 1
        assert st["lists"]["blacklist"]["domains"] == 1
        assert st["rules"]["rules"] > 0 and "smpp" in st and "version" in st["model"]
        # removing something absent: answered, found false, exit 1
        r = ctl(tmp_path, "lists", "remove", "dnc", "0912000999")
        assert r.returncode == 1 and json.loads(r.stdout)["found"] is False
        # a bad value is refused with a reason, nothing changes
        r = ctl(tmp_path, "lists", "add", "dnc", "not-a-number")
        assert r.returncode == 1 and "dnc" in r.stderr
        # drain stops serve as SIGTERM does
        r = ctl(tmp_path, "drain")
        assert r.returncode == 0, r.stderr
        assert p.wait(20) == 0
        assert not (tmp_path / "data" / "control.sock").exists()
        assert 84912000777 in ListStore(tmp_path / "data").load().dnc_s
        # a restart keeps the registration
        p, port = _serve(tmp_path, sim.port, tag="2")
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        _send_ad(port, "84912000777", 3)
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 3)
        assert "AD_TO_DNC" in _ad_verdicts(tmp_path)[2]
    finally:
        _stop(p)
        sim.stop()


def test_ctl_reload_reports_broken_rules_and_keeps_old_ones(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, _ = _serve(tmp_path, sim.port, cfg=cfg)
    try:
        sock = tmp_path / "data" / "control.sock"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        before = json.loads(ctl(tmp_path, "stats").stdout)["rules"]
        (cfg / "rules" / "50-test.toml").write_text(NEW_RULE.replace('keywords = ["xyzzy"]', 'keywrds = ["xyzzy"]'))
        r = ctl(tmp_path, "reload")
        assert r.returncode == 1
        ans = json.loads(r.stdout)
        assert ans["ok"] is False and ans["rules"]["ok"] is False
        assert any("50-test.toml:9:1: unknown condition 'keywrds'" in e for e in ans["rules"]["errors"])
        assert "50-test.toml:9:1" in r.stderr
        assert ans["rules"]["rules"] == before["rules"] and ans["rules"]["generation"] == before["generation"]
        # a good rule file: accepted, one more rule, a new generation
        (cfg / "rules" / "50-test.toml").write_text(NEW_RULE)
        r = ctl(tmp_path, "reload")
        assert r.returncode == 0, r.stdout + r.stderr
        ans = json.loads(r.stdout)
        assert ans["rules"]["rules"] == before["rules"] + 1 and ans["rules"]["generation"] > before["generation"]
        # the protocol's bounds: junk, an oversized line, too many connections
        assert request(sock, {"cmd": "nope"})["ok"] is False
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        s.sendall(b"x" * (MAX_LINE + 10) + b"\n")
        assert b"longer than" in s.recv(4096)
        s.close()
        held = []
        for _ in range(MAX_CONNECTIONS):
            c = socket.socket(socket.AF_UNIX)
            c.connect(str(sock))
            c.sendall(b'{"cmd": "stats"}\n')
            assert c.recv(1 << 20)
            held.append(c)
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(sock))
        c.settimeout(10)
        assert b"busy" in c.recv(4096)
        c.close()
        for c in held:
            c.close()
        assert wait_for(lambda: request(sock, {"cmd": "stats"})["ok"])
    finally:
        _stop(p)
        sim.stop()
    assert p.returncode == 0


def test_ctl_without_a_server_exits_2(tmp_path):
    (tmp_path / "data").mkdir()
    for args in (("stats",), ("reload",), ("lists", "add", "dnc", "0912000001")):
        r = ctl(tmp_path, *args)
        assert r.returncode == 2 and "no telfilter serve answers" in r.stderr, r.stderr
    # a stale socket file left by a killed serve: still exit 2, not a traceback
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "data" / "control.sock"))
    s.close()
    r = ctl(tmp_path, "stats")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_pool_sockets_follow_the_control_socket_name(tmp_path):
    from engine.control_client import pool_sockets
    for n in ("tf.sock", "tf.w1.sock", "tf.w2.sock", "tf.wx.sock", "control.w1.sock"):
        (tmp_path / n).touch()
    assert [p.name for p in pool_sockets(tmp_path / "tf.sock")] == ["tf.w1.sock", "tf.w2.sock"]
    assert [p.name for p in pool_sockets(tmp_path / "control.sock")] == ["control.w1.sock"]


def test_serve_applies_dnc_journal_lines_another_process_appended(tmp_path):
    """A `telfilter check --jsonl` replaying 5656 commands on serve's data dir appends to the DNC
    journal without installing a snapshot: serve applies those lines within a couple of seconds."""
    from engine.lists import ListStore
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    ListStore(tmp_path / "data").add("senders", "SHOPABC", "SV", ["Shop", "QC", "", "", ""])
    p, port = _serve(tmp_path, sim.port)
    try:
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        line = json.dumps({"id": 1, "kind": "sms", "sender": "0912000778", "recipient": "5656", "text": "DK DNC",
                           "time": "2026-03-02T09:00:00+07:00"})
        r = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--data-dir", tmp_path / "data",
                            "--jsonl", "-"], input=line + "\n", cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "DNC_REGISTERED" in r.stdout, r.stdout + r.stderr
        assert wait_for(lambda: json.loads(ctl(tmp_path, "stats").stdout)["lists"]["dnc"]["SV"] == 1, 10)
        _send_ad(port, "84912000778", 1)
        assert wait_for(lambda: len(_ad_verdicts(tmp_path)) == 1)
        assert "AD_TO_DNC" in _ad_verdicts(tmp_path)[0]
    finally:
        _stop(p)
        sim.stop()


def test_clients_that_never_read_their_answers_do_not_hold_the_control_socket(tmp_path, monkeypatch):
    """MAX_CONNECTIONS clients that send requests and never read the answers used to hold every slot for as
    long as they stayed connected (the answer's drain had no time limit, only the wait for a request had):
    `ctl` was refused "busy" past the documented 30 s idle close (found by an operations probe)."""
    import asyncio

    from engine import control
    from engine.control import ControlServer
    monkeypatch.setattr(control, "REQUEST_TIMEOUT", 0.5)
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)
    path = tmp_path / "c.sock"

    async def main():
        srv = ControlServer(pipe, path, on_drain=lambda: None)
        await srv.start()
        hogs = []
        for _ in range(MAX_CONNECTIONS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(str(path))
            s.setblocking(False)
            try:
                for _ in range(100000):                 # until the socket buffers are full both ways
                    s.send(b'{"cmd": "stats"}\n' * 64)
            except BlockingIOError:
                pass
            hogs.append(s)
        await asyncio.sleep(2.0)                        # well past REQUEST_TIMEOUT
        ans = await asyncio.to_thread(request, path, {"cmd": "stats"}, 5)
        for s in hogs:
            s.close()
        await srv.stop()
        return ans
    ans = asyncio.run(main())
    assert ans.get("ok") is True, ans


def test_ctl_waits_its_turn_when_the_control_socket_is_busy(tmp_path):
    """A ctl call made while MAX_CONNECTIONS others are connected was answered "busy" and exited 1 (the status
    of a refused command; a script running 20 `ctl lists add` at once lost 2 of them: found by an operations
    probe). The server says busy before reading the request, so the client asks again until its timeout."""
    import asyncio

    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)
    path = tmp_path / "c.sock"

    async def main():
        srv = ControlServer(pipe, path, on_drain=lambda: None)
        await srv.start()
        held = [await asyncio.open_unix_connection(str(path)) for _ in range(MAX_CONNECTIONS)]
        await asyncio.sleep(0.1)
        asyncio.get_running_loop().call_later(0.5, lambda: [w.close() for _, w in held])
        ans = await asyncio.to_thread(request, path, {"cmd": "stats"}, 10)
        await srv.stop()
        return ans
    ans = asyncio.run(main())
    assert ans.get("ok") is True, ans


def test_a_command_under_way_at_the_stop_is_answered(tmp_path):
    """A SIGTERM while `ctl reload` loaded the model (in a thread) stopped serve without waiting for it: the
    client got no answer (ctl exit 2) and serve logged an asyncio 'Exception in callback ... CancelledError'
    traceback (found by an operations probe). The stop now lets a command under way finish, bounded."""
    import asyncio

    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)
    path = tmp_path / "c.sock"

    class Slow(ControlServer):
        async def handle(self, req):
            await asyncio.to_thread(__import__("time").sleep, 0.5)
            return {"ok": True, "slow": True}

    async def main():
        srv = Slow(pipe, path, on_drain=lambda: None)
        await srv.start()
        r, w = await asyncio.open_unix_connection(str(path))
        w.write(b'{"cmd": "reload"}\n')
        await w.drain()
        await asyncio.sleep(0.1)                 # the command is under way
        await srv.stop()                         # serve's exit follows it: nothing runs after
        return await asyncio.wait_for(r.readline(), 0.05)
    line = asyncio.run(main())
    assert json.loads(line) == {"ok": True, "slow": True}


def test_a_peer_connected_at_serve_exit_logs_no_traceback(tmp_path, caplog):
    """A ctl connection still open when serve exits was cancelled with the loop's other tasks and asyncio
    logged 'Exception in callback ... CancelledError' with a traceback at ERROR after 'stopped' (found by an
    operations probe: SIGTERM while a client was connected). It is closed quietly."""
    import asyncio
    import logging

    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)
    path = tmp_path / "c.sock"

    async def main():
        srv = ControlServer(pipe, path, on_drain=lambda: None)
        await srv.start()
        r, w = await asyncio.open_unix_connection(str(path))
        w.write(b'{"cmd": "stats"}\n')
        await r.readline()                      # answered; the peer stays connected, waiting for its next request
        await srv.stop()
        return w                                # asyncio.run cancels the peer's handler, as at serve's exit
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


def test_a_stop_with_no_time_left_and_no_command_under_way_warns_of_none(tmp_path, caplog):
    """serve passes stop() what is left of --drain-timeout: 0 when the drain used it all (or --drain-timeout 0).
    wait_for(lock.acquire(), 0) times out even on a free lock, so every such stop logged "control command still
    running at the stop: its client gets no answer" with no command running (found by review36 of 184b1b0)."""
    import asyncio
    import logging

    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)

    async def main():
        srv = ControlServer(pipe, tmp_path / "c.sock", on_drain=lambda: None)
        await srv.start()
        await srv.stop(wait=0.0)
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        asyncio.run(main())
    assert "still running" not in caplog.text, caplog.text


def test_a_list_change_on_the_control_socket_leaves_an_audit_line(tmp_path, caplog):
    """Found by the ops probe (stop 47): `ctl lists add/remove` changed the DNC list, the blacklist or consent with
    no line in the service log (a 5656 change has its verdict line; an operator's had nothing): each change taken
    is a line naming what, which channel and the peer's uid, at any -v level."""
    import asyncio
    import logging

    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=True)
    path = tmp_path / "c.sock"

    async def main():
        srv = ControlServer(pipe, path, on_drain=lambda: None)
        await srv.start()
        r, w = await asyncio.open_unix_connection(str(path))
        answers = []
        for req in ({"cmd": "lists", "op": "add", "kind": "dnc", "value": "0912345678", "channel": "S"},
                    {"cmd": "lists", "op": "remove", "kind": "dnc", "value": "0912000000", "channel": "V"},
                    {"cmd": "lists", "op": "add", "kind": "dnc", "value": "not a number"}):
            w.write(json.dumps(req).encode() + b"\n")
            answers.append(json.loads(await r.readline()))
        w.close()
        await srv.stop()
        return answers
    with caplog.at_level(logging.INFO, logger="telfilter.service"):
        answers = asyncio.run(main())
    assert [a["ok"] for a in answers] == [True, True, False]
    lines = [r.getMessage() for r in caplog.records if r.name == "telfilter.service" and "ctl lists" in r.getMessage()]
    assert lines == [f"ctl lists add dnc 0912345678 channel S by uid {os.getuid()}",
                     f"ctl lists remove dnc 0912000000 channel V by uid {os.getuid()} (was not listed)"], lines


def test_ctl_stats_in_a_pool_says_which_worker_it_is(tmp_path, monkeypatch):
    """Found by the ops probe (stop 47): in a `--workers` pool `ctl stats` answered worker 0's counters without saying
    whose they were (each worker has its own socket and counters)."""
    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)
    srv = ControlServer(pipe, tmp_path / "c.sock", on_drain=lambda: None)
    monkeypatch.delenv("TELFILTER_WORKERS", raising=False)
    assert "worker" not in srv.stats()
    monkeypatch.setenv("TELFILTER_WORKERS", "2")
    monkeypatch.setenv("TELFILTER_WORKER", "1")
    assert srv.stats()["worker"] == 1
