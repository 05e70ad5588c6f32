"""systemd Type=notify (engine/sdnotify.py, sd_notify(3)): a real serve process tells a real Unix datagram socket
(standing in for systemd's) READY=1 once it listens, RELOADING=1 (with MONOTONIC_USEC=) / READY=1 around a SIGHUP
reload, STOPPING=1 at the drain, STATUS= lines, and WATCHDOG=1 at half of $WATCHDOG_USEC from its event loop.
Before, contrib/telfilter.service was Type=simple: systemd called the unit started before the ports were open and
had no watchdog on a stuck loop."""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import smpplib.client

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import ROOT
from .test_serve import free_port


class Systemd:
    """The service manager's end: a datagram socket at a path, or in the abstract namespace ('@name')."""

    def __init__(self, tmp_path, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"telfilter-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.env = str(tmp_path / "notify")
            self.sock.bind(self.env)
        self.got: list[tuple[float, dict]] = []

    def read(self, until, timeout=30.0):
        """Messages (NAME -> value dicts) until `until(message)` is true for one; AssertionError after timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            msg = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.got.append((time.monotonic(), msg))
            if until(msg):
                return msg
        raise AssertionError(f"not seen; got {[m for _, m in self.got]}")

    def close(self):
        self.sock.close()


def _serve(tmp_path, sd, smsc_port, **env):
    smpp_port = free_port()
    ready, err = tmp_path / "ready", open(tmp_path / "stderr.log", "w")
    e = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    e.update(NOTIFY_SOCKET=sd.env, **env)
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{smsc_port}",
                          "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                          "--ready-file", ready], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL, env=e)
    err.close()
    return p, smpp_port, ready


def _stop(p):
    if p.poll() is None:
        p.kill()
        p.wait(10)


def test_serve_notifies_ready_reloading_stopping_status_and_the_watchdog(tmp_path):
    sd = Systemd(tmp_path)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, port, ready = _serve(tmp_path, sd, sim.port, WATCHDOG_USEC="400000")
    try:
        msg = sd.read(lambda m: m.get("READY") == "1")
        assert ready.exists()                             # READY=1 after every listener is up (and the ready file)
        assert msg["STATUS"].startswith(f"SMPP port {port}: 0 ESME binds, ")
        sd.read(lambda m: "1 SMSC link bound (1 SMSC configured)" in m.get("STATUS", ""))
        start = len(sd.got)
        c = smpplib.client.Client("127.0.0.1", port, timeout=5)
        c.connect()
        c.bind_transceiver(system_id="t", password="pw")
        try:                                               # an ESME bound: said within the watch loop's second
            sd.read(lambda m: m.get("STATUS", "").startswith(f"SMPP port {port}: 1 ESME bind, "))
        finally:
            c.unbind()
            c.disconnect()
        t0 = time.monotonic()
        sd.read(lambda m: time.monotonic() - t0 > 1.5)     # WATCHDOG=1 every 0.2 s (half of 0.4 s)
        pings = [t for t, m in sd.got[start:] if m == {"WATCHDOG": "1"}]
        assert len(pings) >= 4, sd.got
        before = time.monotonic_ns() // 1000
        p.send_signal(signal.SIGHUP)
        msg = sd.read(lambda m: "RELOADING" in m)
        after = time.monotonic_ns() // 1000
        assert msg["RELOADING"] == "1" and before <= int(msg["MONOTONIC_USEC"]) <= after      # CLOCK_MONOTONIC, us
        sd.read(lambda m: "READY" in m)                    # the reload is over
        p.send_signal(signal.SIGTERM)
        assert sd.read(lambda m: "STOPPING" in m) == {"STOPPING": "1", "STATUS": "draining"}
        assert p.wait(30) == 0
        assert [k for _, m in sd.got for k in ("READY", "RELOADING", "STOPPING") if k in m] == \
            ["READY", "RELOADING", "READY", "STOPPING"]
    finally:
        _stop(p)
        sim.stop()
        sd.close()


def test_an_abstract_socket_and_a_watchdog_meant_for_another_pid(tmp_path):
    """NOTIFY_SOCKET=@name is the abstract namespace; WATCHDOG_PID not ours: no pings (sd_watchdog_enabled(3))."""
    sd = Systemd(tmp_path, abstract=True)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, port, ready = _serve(tmp_path, sd, sim.port, WATCHDOG_USEC="200000", WATCHDOG_PID="1")
    try:
        sd.read(lambda m: m.get("READY") == "1")
        try:
            sd.read(lambda m: False, timeout=1.0)          # 1 s: five pings' time
        except AssertionError:
            pass
        assert not [m for t, m in sd.got if "WATCHDOG" in m]
        p.send_signal(signal.SIGTERM)
        sd.read(lambda m: "STOPPING" in m)
        assert p.wait(30) == 0
    finally:
        _stop(p)
        sim.stop()
        sd.close()


def test_the_watchdog_is_pinged_from_the_event_loop_so_a_stuck_loop_stops_it(tmp_path):
    import threading

    from engine.sdnotify import Notifier
    sd = Systemd(tmp_path)
    got, done = [], threading.Event()

    def receive():                                         # systemd's end, timing each ping as it arrives
        sd.sock.settimeout(0.05)
        while not done.is_set():
            try:
                data = sd.sock.recv(100)
            except socket.timeout:
                continue
            # the clock read once the ping is here: read before recv() (as the tuple did), a ping sent as the loop
            # came back at stuck + 1.0 was dated up to 0.05 s (the recv timeout) earlier, plus any wait for the CPU
            # between the two calls -- 0.963 seen on a loaded host, 13 ms from the window below
            got.append((time.monotonic(), data))
    rx = threading.Thread(target=receive)
    rx.start()

    async def run():
        n = Notifier({"NOTIFY_SOCKET": sd.env, "WATCHDOG_USEC": "100000"})
        n.start_watchdog(asyncio.get_running_loop())
        await asyncio.sleep(0.5)
        stuck = time.monotonic()
        time.sleep(1.0)                                    # the loop runs nothing for 1 s
        await asyncio.sleep(0.5)
        n.close()
        return stuck
    try:
        stuck = asyncio.run(run())
        time.sleep(0.1)
    finally:
        done.set()
        rx.join()
        sd.close()
    assert {d for _, d in got} == {b"WATCHDOG=1\n"}
    assert len([t for t, _ in got if t < stuck]) >= 4                # every 0.05 s while the loop ran
    # none while it was stuck (a ping sent before it, dated on arrival, has 0.2 s to be read: a loaded CI host)
    assert [t - stuck for t, _ in got if stuck + 0.2 < t < stuck + 1.0] == []
    assert len([t for t, _ in got if t > stuck + 1.0]) >= 4          # and again once it runs



def _received(sock) -> list:
    """The datagrams waiting on `sock` (until it is quiet for its timeout)."""
    got = []
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    return got

def test_a_ready_dropped_by_a_full_queue_is_sent_again():
    """A READY=1 the receiver's queue had no room for (net.unix.max_dgram_qlen: 10 datagrams by default; a pool's
    supervisor reads its workers' every 0.1 s) was dropped for good: systemd failed the start at TimeoutStartSec=,
    a pool's supervisor killed the worker at --start-timeout. It is sent again at the next status check or ping."""
    from engine.sdnotify import Notifier
    sd = Systemd(None, abstract=True)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    try:
        to = "\0" + sd.env[1:]
        filled = 0
        while filled < 100000:
            try:
                filler.sendto(b"X=1\n", to)
                filled += 1
            except BlockingIOError:
                break
        n = Notifier({"NOTIFY_SOCKET": sd.env})
        n.ready("SMPP port 1")                                  # dropped: the queue is full
        n.status("SMPP port 1")                                 # still full: dropped again
        sd.sock.settimeout(0.2)
        got = _received(sd.sock)
        assert got == ["X=1\n"] * filled and filled < 100000
        n.status("SMPP port 1")                                 # room again
        n.close()
        got = _received(sd.sock)
        assert got == ["READY=1\n", "STATUS=SMPP port 1\n"], got
    finally:
        filler.close()
        sd.close()


def test_nothing_is_sent_without_notify_socket():
    from engine.sdnotify import Notifier
    n = Notifier({"WATCHDOG_USEC": "100000"})
    assert not n.active and n.watchdog_s is None and n.send("READY=1") is False
    n.ready("x")
    n.close()
    assert Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).active is False


def test_a_reload_that_ends_during_the_stop_does_not_say_ready(tmp_path):
    """sd_notify(3): READY=1 while reloading says the reload is over; after STOPPING=1 it would say the service is
    up again. A SIGHUP reload still reading rules when SIGTERM came (its handler stays in place through the drain)
    ended with READY=1 after STOPPING=1; a SIGHUP during the drain sent RELOADING=1 then READY=1 too."""
    from engine.sdnotify import Notifier
    sd = Systemd(tmp_path)
    try:
        n = Notifier({"NOTIFY_SOCKET": sd.env})
        n.ready("up")
        n.reloading()               # a reload under way
        n.stopping()                # SIGTERM
        n.reloaded()                # the reload ends during the drain
        n.reloading()               # a SIGHUP during the drain
        n.reloaded()
        n.close()
        got = []
        sd.sock.settimeout(0.2)
        try:
            while True:
                got.append(sd.sock.recv(4096).decode())
        except socket.timeout:
            pass
        assert got[0].startswith("READY=1") and got[1].startswith("RELOADING=1"), got
        assert got[2].startswith("STOPPING=1") and len(got) == 3, got
    finally:
        sd.close()
