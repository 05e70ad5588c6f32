"""serve's stop hands SIGHUP/SIGUSR1/SIGUSR2 from the event loop's handlers to SIG_IGN (serve.ignore_from_here) with
no moment of the default action, which ends the process: a SIGUSR2 (logrotate's postrotate) is delivered here after
every step of the hand-over and of the loop's close, under uvloop and under asyncio's own loop."""
import signal
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


# A serve (or a pool's supervisor) whose stop is done: SIGTERM and SIGINT (a second stop signal, a pool's SIGTERM
# passed on twice) land during the interpreter's finalisation, when a Python handler has given way to the default
# action (an object in a module torn down then sends them). The exit status stays the stop's: before, the process
# died by signal 15 (a status 1, "state not saved", called a clean SIGTERM death by systemd; a pool's worker said
# "not drained" and the pool's exit made 1).
AT_THE_END = textwrap.dedent("""
    import os, signal, sys, types

    class Late:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)

    sys.modules["late_signals"] = types.ModuleType("late_signals")
    sys.modules["late_signals"].late = Late()           # torn down with the modules, at the very end
    sys.argv = ["telfilter", *sys.argv[1:]]             # (a pool's workers' command line is the supervisor's)
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def serve_then_stop(tmp_path, *extra, probe=AT_THE_END, before_stop=lambda p: None):
    """`serve` run by `probe` (its last words: the command line) until ready, `before_stop(p)`, SIGTERM: (its exit
    status, its service log). (Later options win: `extra` may name another --control-socket.)"""
    from .test_serve import free_port, wait_ready
    err_path, ready, logs = tmp_path / "stderr.log", tmp_path / "ready", tmp_path / "logs"
    logs.mkdir()
    with open(err_path, "w") as err:
        p = subprocess.Popen([sys.executable, "-c", probe, "serve", "--data-dir", tmp_path / "data",
                              "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off",
                              "--log", logs / "v.jsonl", "--ready-file", ready, "--control-socket", "off", *extra],
                             cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
        try:
            wait_ready(p, ready, err_path)
            before_stop(p)
            p.send_signal(signal.SIGTERM)
            rc = p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    return rc, err_path.read_text()


def test_a_stop_signal_as_serve_exits_leaves_its_exit_status(tmp_path):
    rc, text = serve_then_stop(tmp_path)
    assert rc == 0 and "stopped" in text, (rc, text[-2000:])


def test_a_stop_signal_as_a_pools_supervisor_exits_leaves_its_exit_status(tmp_path):
    from .redis_helpers import RedisServer
    redis = RedisServer(tmp_path / "redis")
    try:
        rc, text = serve_then_stop(tmp_path, "--workers", "2", "--state", redis.url)
    finally:
        redis.stop()
    assert rc == 0 and "all workers stopped" in text, (rc, text[-2000:])
