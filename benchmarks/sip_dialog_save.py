"""How long the SIP screen's periodic save of its answered-call memory stops the event loop, and its CPU.

    python -m benchmarks.sip_dialog_save [CALLS] [REPEATS]

Theory of operation: a memory of CALLS answered calls (default 200,000: the bound, server.ANSWERED) with entries
of the screen's shape, and its judged-INVITE memories as full in proportion (131,072 INVITEs judged in the last 32 s
with 200,000 calls, the most a file holds: judgedstore.py; 655 with 1,000), saved REPEATS times each way, alternating: forked (dialogsave.DialogSaver, serve's way: a
child writes a copy-on-write image) and on the loop (what a save without fork would cost: the memory copied, ~the
least a snapshot for a thread would take, then dumped and written). A ticker task wakes every millisecond and
records the longest gap between its wake-ups while each save runs: the pause every message and call in flight
sees. Also: the wall time of a save, the forked child's CPU (user + system), the file's size, the process's RSS,
and the cost of a tick that finds nothing changed. Prints one JSON object.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from .snapshot_bench import _ticked


def _judged(screen, n: int) -> None:
    """`screen`'s judged-INVITE memories full (judgedstore.py: at most VERDICTS entries saved): `invites` (INVITES)
    with the Decisions of calls let through, a tenth of them tagged, and `rejected` with the rest, all judged within
    the last 32 s."""
    from engine.sip_screen.recent import Recent
    from engine.sip_screen.screening import RETRANSMISSIONS, VERDICTS, Decision
    from engine.sip_screen.server import INVITES
    from engine.verdict import Action
    screen.invites, screen.rejected, screen.carried = Recent(INVITES), Recent(VERDICTS, RETRANSMISSIONS), None
    r, now = random.Random(2).randbytes, time.monotonic()
    tagged = Decision(Action.TAG, 603, (), ("SPAM_SCORE_HIGH",), 6.5)
    refused = Decision(Action.DROP, 608, ("AD_CALL_FREQUENCY_CAP",), ("AD_CALL_FREQUENCY_CAP",), 10.0)
    for i in range(n):
        branch = "z9hG4bKtf" + r(10).hex()
        if i < INVITES:
            screen.invites.put(r(16), (branch, (f"10.0.{i % 7}.{i % 200}", 5060, "UDP"), tagged if i % 10 == 0 else 0),
                               now - (n - i) * 1e-4)
        else:
            screen.rejected.put(r(16), (branch, refused, None), now - (n - i) * 1e-4)


def _screen(calls: int, judged: int | None = None):
    from engine.sip_screen.dialogs import AnsweredCalls
    from engine.sip_screen.server import ANSWERED, PENDING_CALLS
    mem = AnsweredCalls(max(calls, ANSWERED), low_min=PENDING_CALLS)
    r = random.Random(1).getrandbits
    for i in range(calls):
        mem.put(r(64), (f"0901{i:06d}", 1000.0 + i * 0.001, r(64), f"10.0.{i % 7}.{i % 200}", r(64), r(64)))
    scr = SimpleNamespace(answered=mem, dialog_key=os.urandom(16), call_ticks=time.monotonic,
                           clock=lambda: SimpleNamespace(timestamp=time.time),
                           s=SimpleNamespace(dialog_save_interval=5.0))
    _judged(scr, min(131_072, calls * 131_072 // 200_000) if judged is None else judged)
    return scr


async def _run(calls: int, repeats: int) -> dict:
    import gc
    from engine.durable import replace_file
    from engine.sip_screen.dialogsave import DialogSaver
    from engine.sip_screen.dialogstore import _without_gc, dump
    scr = _screen(calls)
    gc.collect()
    out = {"calls": calls, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
           "fork": [], "fork_child_cpu_s": [], "on_loop": [], "on_loop_copy_ms": [], "unchanged_tick_us": None}
    from .util import scratch_dir
    with scratch_dir() as td:
        path = Path(td) / "sip" / "dialogs.msgpack"
        saver = DialogSaver(scr, path)
        for _ in range(repeats):
            scr.answered.changes += 1                   # a change: the save is due
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            gap, wall = await _ticked(saver.save_if_changed)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out["fork"].append({"loop_gap_ms": round(gap, 2), "wall_s": round(wall, 3)})
            out["fork_child_cpu_s"].append(round(after.ru_utime + after.ru_stime - before.ru_utime
                                                 - before.ru_stime, 3))

            async def on_loop():
                t = time.perf_counter()
                _without_gc(lambda: (list(scr.answered.low.items()), list(scr.answered.d.items())))
                out["on_loop_copy_ms"].append(round((time.perf_counter() - t) * 1000, 1))
                replace_file(path, _without_gc(dump, scr, time.monotonic(), time.time()))
            gap, wall = await _ticked(on_loop)
            out["on_loop"].append({"loop_gap_ms": round(gap, 2), "wall_s": round(wall, 3)})
        out["file_bytes"] = path.stat().st_size
        t = time.perf_counter()
        for _ in range(1000):
            await saver.save_if_changed()
        out["unchanged_tick_us"] = round((time.perf_counter() - t) * 1000, 2)     # per tick: ms over 1000 = µs
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    try:
        calls = int(argv[0]) if argv else 200_000
        repeats = int(argv[1]) if len(argv) > 1 else 3
        if calls < 1 or repeats < 1 or len(argv) > 2:
            raise ValueError
    except ValueError:
        sys.exit(f"usage: python -m benchmarks.sip_dialog_save [CALLS] [REPEATS] (whole numbers above 0), not {argv}")
    print(json.dumps(asyncio.run(_run(calls, repeats)), indent=1))


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    main()
