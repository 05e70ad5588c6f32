"""Instructions per SIP call through the screen, a deterministic figure (callgrind), per message type.

    python -m engine.sip_screen.instrbench [--calls 300] [--warm 300] [--messages FILE] [--save FILE]
                                           [--listen 127.0.0.1|[::]|[::1]] [--port-base PORT]
    python -m engine.sip_screen.instrbench --cprofile [--calls 3000]   (Python calls per call, by function)

The six datagrams of one sipp call (INVITE, 180, 200, ACK, BYE, 200 as the screen receives
them) are captured at a screen on loopback (needs sipp) or read from FILE (`--save` writes
them: the same bytes then serve an old and a new checkout, which is what makes two figures
comparable). A child process under `valgrind --tool=callgrind` builds the screen as `serve`
does (C pump, verdict log to a file flushed as the event loop flushes it, the durable state
store, the collector frozen and tuned), its socket a stub that counts sends: a relayed message
pays a Python call of the stub (~2,500 instructions) where `serve` makes a sendto(2) from C.
It pushes `--warm` calls through it uncounted, then `--calls` calls, each with its own Call-ID,
counting only the instructions inside the screen's handling of each datagram of one message
type: each datagram is handed to the screen through a C trampoline that switches callgrind's
collection on around it for the type counted (one child per type, and one for the
trampoline's own cost through a no-op), so start-up, warm-up, the driver and the other types
are not counted. Prints one JSON object: instructions per call and per message type, the
trampoline's own cost (`hop`) subtracted. Instruction counts do not depend on the host's
load (wall-clock and CPU time here do: see cpubench); two runs of one tree differ by < 0.1%
(the collector's timing). Needs valgrind (with its callgrind.h) and a C compiler.
`--listen ADDR` captures the call at a screen on ADDR (`[::]`: sipp on 127.0.0.1, received as
::ffff:127.0.0.1; `[::1]`: sipp on ::1) and replays it on a real UDP socket bound there (port 0) instead
of the stub, read by nothing, the pump sending with sendto(2) as `serve` does (to sipp's ports, closed
by then: loopback drops them); callgrind counts user-space instructions, so the kernel's share of a send is
in neither figure. `sent` is then not counted; `forward_failed` says whether sends failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..listen import host_ref
from .benchcall import TYPES, capture_call, free_udp, run_tool, stub_socket

ROOT = Path(__file__).resolve().parents[2]
HOPS = ("INVITE", "180", "200/INVITE", "ACK", "BYE", "200/BYE", "hop")     # TYPES, then the hop's own cost
# t_on(f): f() with callgrind collecting, t_off(f): f() without. The child is not even instrumented until
# tf_on (--instr-atstart=no), which keeps start-up and warm-up fast under valgrind
TRAMPOLINES = """#include <valgrind/callgrind.h>
typedef void (*cb)(void);
void tf_on(void) { CALLGRIND_START_INSTRUMENTATION; }
void tf_off(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void t_on(cb f) { CALLGRIND_TOGGLE_COLLECT; f(); CALLGRIND_TOGGLE_COLLECT; }
void t_off(cb f) { f(); }
"""


def capture(listen: str = "", port_base: int | None = None) -> dict:
    """One sipp call through a screen on loopback (on `listen`, default 127.0.0.1): its six datagrams as the screen
    received them. sipp's UAS on `port_base`, its UAC on the next port (default: ports the kernel picks)."""
    from ..app import build
    from .harness import SipHarness
    from .server import SipSettings
    tmp = Path(tempfile.mkdtemp(prefix="tf-sipinstr-"))
    peer = "::1" if listen == "[::1]" else "127.0.0.1"
    ref = f"[{peer}]" if ":" in peer else peer
    uas_port = port_base or free_udp(peer)
    h = SipHarness(build(None, tmp / "data", seed=False),
                   SipSettings(listen=f"{listen or '127.0.0.1'}:0", next_hop=f"{ref}:{uas_port}",
                               allow_networks=["127.0.0.0/8", "::1/128"])).start()
    try:
        got, _ = capture_call(h, uas_port, tmp, peer, port_base and port_base + 1)
    finally:
        h.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    if len(got) < 6:
        raise SystemExit(f"captured {len(got)} datagrams of a call, not 6")
    cap = {"screen": f"{host_ref(h.screen.host)}:{h.screen.port}", "next_hop": f"{ref}:{uas_port}",
           "messages": [[m.hex(), a[0], a[1]] for m, a in got[:6]]}
    if listen:
        cap["listen"] = listen
    return cap


def screen_for(cap: dict, tmp: Path):
    """A screen as `serve` builds it, at the address the captured messages name (its Via in the responses),
    its socket a stub; and the C pump's per-datagram entry (else on_datagram), as `serve` runs it."""
    from ..app import build
    from ..lists import ListStore
    from ..verdictlog import VerdictLog
    from ..state import install, open_state
    from .harness import SipHarness
    from .server import SipSettings
    from .transport import Pump, UdpEndpoint, make_pump
    ListStore(tmp / "data").import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    pipe = build(None, tmp / "data", seed=False)
    install(pipe, open_state(None, pipe.store.dir))
    listen = cap.get("listen")
    h = SipHarness(pipe, SipSettings(listen=f"{listen or '127.0.0.1'}:0", advertise=cap["screen"],
                                     next_hop=cap["next_hop"], allow_networks=["127.0.0.0/8", "::1/128"])).start()
    h.stop()
    screen = h.screen

    Stub = stub_socket()
    screen.udp = Stub() if not listen else UdpEndpoint.bind(screen, listen.strip("[]"), 0)
    screen.vlog = VerdictLog(str(tmp / "verdicts.jsonl"))
    # as in `serve`, where the log is flushed once per VerdictLog.FLUSH_S by the event loop, not once per line:
    # here there is no running loop, and without this each verdict line would be flushed (a wake-up of the
    # writer thread and a write(2) per INVITE) on its own
    screen.vlog._flush_pending = True
    # and its collector as `serve` leaves it once started (engine/serve.py): start-up state frozen, its thresholds
    import gc
    from ..serve import GC_THRESHOLDS
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    fd = -1 if not listen else screen.udp.sock.fileno()
    return screen, (make_pump(screen, fd, Stub().sendto).handle if Pump is not None else screen.on_datagram), Stub


def calls_of(cap: dict, n: int, first: int = 0) -> list:
    """n copies of the captured call, each with its own Call-ID (same length)."""
    msgs = [(bytes.fromhex(m), (h, p)) for m, h, p in cap["messages"]]
    cid = re.search(rb"Call-ID: ([^\r]*)", msgs[0][0]).group(1)
    return [[(m.replace(cid, b"%0*x" % (len(cid), i + 1)), a) for m, a in msgs] for i in range(first, first + n)]


def child(cap_file: str, warm: int, calls: int, so: str, counted: int) -> None:
    """Under callgrind: warm-up uncounted, then `calls` calls, collecting only inside message type `counted`'s
    handling (6: only the hop's own cost, a no-op through the same trampoline)."""
    import ctypes
    cap = json.loads(Path(cap_file).read_text())
    # inside the parent's directory, which the parent removes: a child killed (the parent stopped) removes nothing
    tmp = Path(cap_file).parent / f"child.{counted}"
    tmp.mkdir()
    screen, on, stub = screen_for(cap, tmp)
    for call in calls_of(cap, warm):
        for m, a in call:
            on(m, a)
    lib = ctypes.PyDLL(so)                          # PyDLL: the GIL stays held
    hook = ctypes.CFUNCTYPE(None)
    cur = [None, None]

    def one():
        on(cur[0], cur[1])
    cb, noop = hook(one), hook(lambda: None)
    hops = [lib.t_on if k == counted else lib.t_off for k in range(7)]
    batch = calls_of(cap, calls, warm)
    stub.sent = 0
    lib.tf_on()
    for call in batch:
        for k, (m, a) in enumerate(call):
            cur[0], cur[1] = m, a
            hops[k](cb)
        hops[6](noop)
    lib.tf_off()
    screen.vlog.close()
    st = screen.stats
    print(json.dumps({"sent": stub.sent if "listen" not in cap else None, "expected": 6 * calls,
                      "forward_failed": st["forward_failed"], "internal_errors": st["internal_errors"]}))
    shutil.rmtree(tmp, ignore_errors=True)


def callgrind(cap: dict, warm: int, calls: int) -> dict:
    """One child per message type (and one for the hop): the instructions collected, per call."""
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind")
    tmp = Path(tempfile.mkdtemp(prefix="tf-sipinstr-"))
    (tmp / "hops.c").write_text(TRAMPOLINES)
    so = tmp / "hops.so"
    subprocess.run(["cc", "-O0", "-shared", "-fPIC", "-o", str(so), str(tmp / "hops.c")], check=True)
    cap_file = tmp / "call.json"
    cap_file.write_text(json.dumps(cap))
    env = dict(os.environ, PYTHONHASHSEED="0")       # the same dict layouts every run
    got, sent = [], None
    try:    # (subprocess.run kills the child on any exception: Ctrl-C, SIGTERM's SystemExit, the timeout)
        for k in range(len(HOPS)):
            # --vgdb=no: no gdbserver FIFOs in $TMPDIR (a valgrind killed at a stop leaves them there)
            r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out.{k}",
                                "--vgdb=no", "--instr-atstart=no", "--collect-atstart=no",
                                sys.executable, "-m", "engine.sip_screen.instrbench", "--child", str(cap_file),
                                "--warm", str(warm), "--calls", str(calls), "--so", str(so), "--counted", str(k)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
            m = re.search(r"Collected : (\d+)", r.stderr)
            if r.returncode != 0 or not m:
                raise SystemExit(f"the child failed ({r.returncode}):\n{r.stderr[-3000:]}")
            got.append(int(m.group(1)) / calls)
            sent = json.loads(r.stdout.strip().splitlines()[-1])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)      # kept only with a result that names its outputs
        raise
    res = {t: round(x - got[6]) for t, x in zip(TYPES, got)}
    res["call"] = sum(res[t] for t in TYPES)
    res["hop"] = round(got[6])
    res.update(sent, calls=calls, warm=warm, callgrind_out=f"{tmp}/callgrind.out.K (K: 0 INVITE .. 5 200/BYE)")
    return res


def cprofile(cap: dict, warm: int, calls: int, top: int = 40) -> dict:
    """Python function calls per call (cProfile), by function: deterministic too, and says where in Python."""
    import cProfile
    import pstats
    tmp = Path(tempfile.mkdtemp(prefix="tf-sipinstr-"))
    screen, on, _ = screen_for(cap, tmp)
    for call in calls_of(cap, warm):
        for m, a in call:
            on(m, a)
    batch = calls_of(cap, calls, warm)
    p = cProfile.Profile()
    p.enable()
    for call in batch:
        for m, a in call:
            on(m, a)
    p.disable()
    screen.vlog.close()
    shutil.rmtree(tmp, ignore_errors=True)         # (callgrind()'s directory is kept: its outputs are named)
    st = pstats.Stats(p)
    rows = sorted(((v[1], f"{Path(k[0]).name}:{k[1]}({k[2]})") for k, v in st.stats.items()), reverse=True)
    return {"python_calls_per_call": round(sum(v[1] for v in st.stats.values()) / calls, 2),
            "by_function": {name: round(n / calls, 2) for n, name in rows[:top]}}


def port_base(value: str) -> int:
    """--port-base: a port from 1024 to 65534 (it and the next one are used)."""
    try:
        p = int(value)
    except ValueError:
        p = 0
    if not 1024 <= p <= 65534:
        raise argparse.ArgumentTypeError(f"{value!r}: a port from 1024 to 65534 (it and the next one are used)")
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.sip_screen.instrbench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="calls counted, after the warm-up (default 300)")
    ap.add_argument("--warm", type=int, default=300, help="calls handled first, not counted (default 300)")
    ap.add_argument("--messages", help="the captured call (JSON, from --save) instead of capturing one with sipp")
    ap.add_argument("--save", help="write the captured call here")
    ap.add_argument("--listen", default="", choices=("", "127.0.0.1", "[::]", "[::1]"),
                    help="capture and replay on a real socket at this address (see above)")
    ap.add_argument("--port-base", type=port_base, metavar="PORT",
                    help="sipp's ports for the capture: its UAS on PORT, its UAC on PORT+1 (default: ports the kernel "
                    "picks; a shared machine's runs keep apart by each taking a range of its own, e.g. 25000); the "
                    "screen's own port is always the kernel's, bound at once")
    ap.add_argument("--cprofile", action="store_true", help="Python calls per call by function instead (no valgrind)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--so", help=argparse.SUPPRESS)
    ap.add_argument("--counted", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.child, a.warm, a.calls, a.so, a.counted)
        return 0
    if a.calls < 1 or a.warm < 0:
        ap.error(f"--calls {a.calls} --warm {a.warm}: at least one call counted, no fewer than 0 warm-up calls")
    try:
        cap = json.loads(Path(a.messages).read_text()) if a.messages else None
    except (OSError, ValueError) as e:
        ap.error(f"--messages {a.messages}: not a captured call from --save ({type(e).__name__}: {e})")
    if cap is None:
        cap = capture(a.listen, a.port_base)
    if a.save:
        Path(a.save).write_text(json.dumps(cap))
    print(json.dumps(cprofile(cap, a.warm, a.calls) if a.cprofile else callgrind(cap, a.warm, a.calls)))
    return 0


if __name__ == "__main__":
    run_tool(main, "engine.sip_screen.instrbench")
