"""What the SIP benchmarks share (cpubench.py, instrbench.py): a free UDP port, one sipp call through a screen on
loopback captured datagram by datagram (`capture_call`; TYPES names them in order), a stand-in for the
screen's UDP socket that counts what is sent (`stub_socket`), so the captured call can be replayed in process, and
how a tool's command runs its `main` (`run_tool`)."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

SC = Path(__file__).resolve().parents[2] / "benchmarks" / "sipp"      # sipp's scenarios


def free_udp(host: str = "127.0.0.1") -> int:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


TYPES = ("INVITE", "180", "200/INVITE", "ACK", "BYE", "200/BYE")


def stub_socket():
    """A class standing in for the screen's UDP socket: counts what is sent (`sent`, on the class: a fresh class
    each call) and is never behind (every call is judged)."""
    class Stub:
        sent = 0

        def sendto(self, data, addr):
            Stub.sent += 1

        def behind_since(self):
            return 0.0
    return Stub


def capture_call(h, uas_port: int, cwd: Path, peer: str = "127.0.0.1", uac_port: int | None = None) -> tuple[list, object]:
    """One sipp call through the screen of harness `h`, whose next hop is a sipp UAS started here on `uas_port`
    (sipp on `peer`, 127.0.0.1 or ::1), its UAC on `uac_port` (default: one the kernel picks): the datagrams the
    screen received, in order, as (bytes, addr), and the screen's own on_datagram (a tap that keeps them is left in
    its place: put `real` back before measuring)."""
    ref = f"[{peer}]" if ":" in peer else peer
    got = []

    async def python_reader():                   # every datagram through on_datagram, to capture them
        h.screen.fast_path = False
        h.screen.udp.refresh()
    h.call(python_reader())
    real = h.screen.on_datagram

    def tap(data, addr):
        got.append((data, addr))
        return real(data, addr)
    h.screen.on_datagram = tap
    uas = subprocess.Popen(["sipp", "-sf", str(SC / "uas.xml"), "-i", peer, "-ci", peer, "-p", str(uas_port), "-m", "1",
                            "-timeout", "20s", "-nostdin"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["sipp", f"{ref}:{uas_port}", "-sf", str(SC / "uac_call.xml"), "-i", peer,
                    "-ci", peer, "-p", str(uac_port or free_udp(peer)), "-rsa", f"{ref}:{h.port}", "-m", "1", "-s", "0912345678",
                    "-key", "caller", "0901234567", "-timeout", "20s", "-nostdin"],
                   cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    uas.wait(25)
    return got, real


def _exit_on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)


def run_tool(main, name: str) -> None:
    """`python -m NAME`: SIGTERM as SystemExit, so that the tool's `finally` blocks stop what it started (serve,
    sipp, the relay, Kamailio, a callgrind child) and remove its scratch dir (by default Python dies at once and they
    ran on, reparented to init); Ctrl-C one line and exit 130, not a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        sys.exit(main())
    except KeyboardInterrupt:   # (its children are stopped and its files removed on the way out)
        print(f"python -m {name}: interrupted (Ctrl-C): what it started is stopped; no figures", file=sys.stderr)
        sys.exit(130)
