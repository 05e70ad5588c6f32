"""No reload begins once serve's stop began (SIGHUP: rules, lists and model; SIGUSR1: the model), as the file watcher's
stop with it. Each signal started one, its reading in a worker thread of the loop's executor, where the stop's own
steps (the held receipts', the message ids', the state's saving) queue behind them: SIGUSR1 every 5 ms from the
SIGTERM on held a `--drain-timeout 1` stop for 37 s, 344 models loaded (systemd's TimeoutStopSec SIGKILLs it). Here
the drain is held by a stalled SMSC while the signals come: nothing is reloaded after "stopping", and the stop ends
within its budget."""
import signal
import time

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .test_ops import _client, _send, _serve
from .test_serve import wait_for

RELOADED = ("rules reloaded", "lists reloaded", "model loaded")


def test_reload_signals_during_the_stop_start_no_reload(tmp_path):
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    sim.sim.stall = True
    p, port = _serve(tmp_path, sim.port, "--esme-account", "t:pw", "--drain-timeout", "2")
    err = tmp_path / "stderr.log"
    try:
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions))
        c = _client(port)
        _send(c, 1)
        assert wait_for(lambda: len(sim.sim.submits()) == 1)     # in flight: the drain waits for it
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert wait_for(lambda: "stopping: draining" in err.read_text(), 30)
        while p.poll() is None and time.monotonic() - t0 < 30:
            for sig in (signal.SIGHUP, signal.SIGUSR1):
                p.send_signal(sig)
            time.sleep(0.005)
        assert p.wait(30) == 0
        took = time.monotonic() - t0
        c.disconnect()
    finally:
        if p.poll() is None:
            p.kill()
        sim.stop()
    text = err.read_text()
    after = text[text.index("stopping: draining"):]
    assert not [w for w in RELOADED if w in after], after[-3000:]
    assert took < 10, (took, text[-2000:])
