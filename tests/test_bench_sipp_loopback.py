"""Every socket a benchmark's sipp opens is on loopback. sipp opens a remote-control socket (UDP 8888 and up) that
takes commands (quit, change the rate) from anyone who can reach it, on 0.0.0.0 unless told `-ci`: the suite's SIP
step left one open to the network per sipp while it ran, `-i 127.0.0.1` notwithstanding. Needs sipp; nothing is
measured here."""
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from .test_bench_ctrl_c import _children

pytestmark = pytest.mark.skipif(not shutil.which("sipp"), reason="needs sipp")


def _udp_addresses(pid) -> list[str]:
    """The local addresses (hex, as /proc/net/udp* has them) of the UDP sockets process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[9] in inodes:
                out.append(f[1].split(":")[0])
    return out


def _loopback(hex_addr: str) -> bool:
    if len(hex_addr) == 8:                                      # IPv4, little-endian: 127.x.x.x ends in 7F
        return hex_addr.endswith("7F")
    return hex_addr == "00000000000000000000000001000000"      # ::1


def test_the_sip_steps_sipps_listen_on_loopback_only():
    from benchmarks.sip_bench import run
    done, seen = {}, {}
    t = threading.Thread(target=lambda: done.setdefault("out", run([20], 1.0)))
    t.start()
    while t.is_alive():
        for k in _children(os.getpid()):
            try:
                if Path(f"/proc/{k}/comm").read_text().strip() == "sipp":
                    seen.setdefault(k, set()).update(_udp_addresses(k))
            except OSError:
                pass
        time.sleep(0.05)
    t.join()
    assert "error" not in done["out"], done["out"]
    assert seen and all(seen.values()), seen
    wide = {k: sorted(a for a in v if not _loopback(a)) for k, v in seen.items()}
    assert not any(wide.values()), wide
