"""`serve` end to end with SIP callers over TCP that never read (test_sip_tcp_write_total.py has the screen alone):
thirty of them, each sending four INVITEs a next hop answers with twelve 30 KB 180s, would make the process hold
42 MB for them (in its kernel send queues: Linux grows each to 4 MB for a peer that reads nothing). With sip.toml's
max_tcp_write_buffered at 8 MB what the SIP port's connections hold, as the kernel reports it (/proc/PID/net/tcp
tx_queue), stays under it (within the queues of a loop turn's closings); the closings are in /metrics; an ESME binds throughout. On 127.0.0.1, ports
22000-22999; the processes are stopped at the end."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from .conftest import CONFIG, ROOT
from .test_sip_tcp_outbound_caps import _bind, wait_for
from .test_sip_tcp_write_total import Callee, bound_socket, invite

BOUND = 8 * 1024 * 1024

SMSC = r'''
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from engine.smpp_proxy.simulator import SmscSimulator
async def main():
    s = SmscSimulator(); await s.start("127.0.0.1", int(sys.argv[2]))
    print("ready", flush=True); await asyncio.sleep(120)
asyncio.run(main())
'''


def free_ports(n: int) -> list:
    """`n` ports of 22000-22999 free for both TCP and UDP on 127.0.0.1 now."""
    out, held = [], []
    while len(out) < n:
        t = bound_socket()
        port = t.getsockname()[1]
        held.append(t)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
        out.append(port)
    for s in held:
        s.close()
    return out


def tx_queued(pid: int, port: int) -> int:
    """Bytes in the kernel send queues of `pid`'s TCP connections on local `port` (/proc/PID/net/tcp: tx_queue;
    by connection: a read while sockets come and go may list one twice)."""
    queued = {}
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port and cols[3] == "01":     # ESTABLISHED
                queued[cols[2]] = int(cols[4].split(":")[0], 16)
    return sum(queued.values())


def test_serve_holds_no_more_than_max_tcp_write_buffered_for_callers_that_never_read(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "sip.toml").read_text()
    (cfg / "sip.toml").write_text(re.sub(r"(?m)^max_tcp_write_buffered = \d+", f"max_tcp_write_buffered = {BOUND}", toml))
    smpp_port, sip_port, metrics_port, smsc_port = free_ports(4)
    callee = Callee(copies=12)
    callee.start()
    procs, peers = [], []
    try:
        smsc = subprocess.Popen([sys.executable, "-c", SMSC, str(ROOT), str(smsc_port)], stdout=subprocess.PIPE,
                                text=True)
        procs.append(smsc)
        assert smsc.stdout.readline().strip() == "ready"
        ready, data = tmp_path / "ready", tmp_path / "data"
        serve = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--config", str(cfg), "--data-dir", str(data),
             "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{smsc_port}", "--smsc-system-id", "x",
             "--esme-account", "esme1:secret", "--sip-listen", f"127.0.0.1:{sip_port}",
             "--sip-next-hop", f"127.0.0.1:{callee.port}", "--sip-allow-networks", "127.0.0.0/8", "--log",
             "/dev/null", "--metrics-listen", f"127.0.0.1:{metrics_port}", "--ready-file", str(ready)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"),
            env={**os.environ, "TELFILTER_SMSC_PASSWORD": "y"})
        procs.append(serve)
        assert wait_for(ready.exists, 30), (tmp_path / "stderr.log").read_text()
        assert _bind(smpp_port)
        for i in range(30):
            p = bound_socket(rcvbuf=4096)
            p.connect(("127.0.0.1", sip_port))
            p.sendall(b"".join(invite(f"serve-{i}-{k}", p) for k in range(4)))
            peers.append(p)
        held, binds = [], 0
        end = time.monotonic() + 8
        while time.monotonic() < end and (callee.invites < 120 or time.monotonic() < end - 5):
            held.append(tx_queued(serve.pid, sip_port))
            binds += _bind(smpp_port)           # an ESME binds while it goes on
        time.sleep(1.0)
        held.append(tx_queued(serve.pid, sip_port))
        assert callee.invites == 120, callee.invites
        # (a connection closed at the bound has its kernel queue let go when asyncio closes its socket, at the end of
        # the loop's turn; and /proc/PID/net/tcp is no snapshot: one read before it is closed and one read after it
        # was written to are both counted. Once it settles, the bound itself)
        assert max(held) <= BOUND + 4 * 1024 * 1024 and held[-1] <= BOUND, (max(held), held[-1], BOUND)
        assert binds == len(held) - 1 and binds > 0
        from .test_metrics import _get, _samples
        _, text = _get(metrics_port, "/metrics")
        ev = {s.labels["event"]: s.value for s in _samples(text, "telfilter_sip_events_total")}
        assert ev["tcp_write_evicted"] >= 30 - BOUND // (1024 * 1024) - 4, ev
        assert "closing TCP connection with 127.0.0.1:" in (tmp_path / "stderr.log").read_text()
    finally:
        for p in peers:
            p.close()
        for p in procs:
            p.kill()
            p.wait(10)
        callee.close()


if not os.path.exists("/proc/self/net/tcp"):
    pytestmark = pytest.mark.skip("needs Linux's /proc/PID/net/tcp")
