"""serve's stop hands SIGHUP/SIGUSR1/SIGUSR2 from the event loop's handlers to SIG_IGN (serve.ignore_from_here) with
no moment of the default action, which ends the process: a SIGUSR2 (logrotate's postrotate) is delivered here after
every step of the hand-over and of the loop's close, under uvloop and under asyncio's own loop."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import asyncio, os, signal, sys
    from engine.serve import ignore_from_here
    SIGS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)

    def land():                                 # every signal of SIGS, delivered before kill returns
        for s in SIGS:
            os.kill(os.getpid(), s)

    real = signal.signal
    def signal_then_land(sig, handler):
        old = real(sig, handler)
        land()
        return old

    if sys.argv[1] == "uvloop":
        import uvloop
        base = uvloop.Loop
    else:
        base = asyncio.SelectorEventLoop

    class Landing(base):
        def remove_signal_handler(self, sig):
            done = super().remove_signal_handler(sig)
            land()
            return done

    loop = Landing()
    taken = []
    for s in SIGS:
        loop.add_signal_handler(s, taken.append, s)
    loop.call_soon(land)                        # (uvloop takes signals only while it runs)

    def stop():                                 # as serve's stop: on the loop, while it runs
        signal.signal = signal_then_land        # (from here: the loop's handlers are all in place)
        ignore_from_here(loop, SIGS)
        land()
        loop.stop()
    loop.call_later(0.05, stop)
    loop.run_forever()
    assert sorted(set(taken)) == sorted(SIGS), taken          # the loop's handlers ran while it served
    land()
    loop.close()
    land()
    assert all(signal.getsignal(s) == signal.SIG_IGN for s in SIGS), [signal.getsignal(s) for s in SIGS]
    print("ok")
""")


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_reload_and_reopen_signals_never_fall_back_to_the_default_action_at_the_stop(kind):
    p = subprocess.run([sys.executable, "-c", PROBE, kind], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout.strip()) == (0, "ok"), (p.returncode, p.stderr[-2000:])
