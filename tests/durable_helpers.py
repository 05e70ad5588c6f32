"""Fixtures and helpers of the test_durable_* files (the embedded state store, engine/state) and of the tests
that run `serve` on a data dir the same way (test_redis_serve, test_restart_keeps_state, ...): a pipeline with
one registered advertiser and its ads, a store opened and crashed as kill -9 leaves it, a config whose timezone
puts now within advertising hours, an ad submitted over SMPP, and `_Node`: `telfilter serve` processes on one
data dir and one SMSC simulator."""
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.harness import ProxyHarness
from engine.state import install
from engine.state.embedded import EmbeddedStore
from engine.verdict import Message

from .conftest import CONFIG, ROOT
from .test_serve import free_port, wait_for


SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,,\n"


T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone(timedelta(hours=7)))


def _pipe(data):
    ListStore(data).import_csv("senders", SENDERS, "senders.csv")
    return build(data_dir=data, with_model=False)


def _ad(i, recipient="0912000444"):
    return Message("SHOPABC", recipient, f"[QC] Uu dai {i}. Tu choi: TC gui 5656", T0 + timedelta(hours=i), "e")


def _crash(store):
    """What kill -9 leaves: whatever was flushed; the lock goes with the process."""
    os.close(store._lockfd)


def _open(data, pipe=None):
    store = EmbeddedStore(data)
    install(pipe or _pipe(data), store)
    return store


def _verdicts(pipe, msgs):
    return [(v.action.name.lower(), [h.symbol for h in v.hits]) for v in map(pipe.judge, msgs)]


def _hours_config(tmp_path):
    """A config whose timezone puts now at 10:00-14:00 local: ads are within 07:00-22:00."""
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    h = datetime.now(timezone.utc).hour
    off = (12 - h + 12) % 24 - 12                 # local hour = h + off = 12 (mod 24), off in -12..11
    tz = "Etc/GMT" + ("" if off == 0 else f"{-off:+d}")   # Etc/GMT-7 is UTC+7
    t = cfg / "telfilter.toml"
    t.write_text(t.read_text().replace('timezone = "Asia/Ho_Chi_Minh"', f'timezone = "{tz}"'))
    return cfg


def _submit_ad(port, recipient):
    import smpplib.client
    import smpplib.gsm
    c = smpplib.client.Client("127.0.0.1", port, timeout=5)
    c.connect()
    c.bind_transceiver(system_id="t", password="pw")
    parts, enc, esm = smpplib.gsm.make_parts(f"[QC] Uu dai {os.urandom(3).hex()}. Tu choi: TC gui 5656")
    c.send_message(source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1, destination_addr=recipient,
                   short_message=parts[0], data_coding=enc, esm_class=esm)
    st = c.read_pdu().status
    c.unbind()
    c.disconnect()
    return st


class _Node:
    """`telfilter serve` processes on one data dir and one SMSC simulator, started one after another
    (`start()`), each stopped at `stop()` even when it never got ready. `boot`: python -c code that
    runs serve (a module setting patched first), else `-m engine.cli`."""

    def __init__(self, tmp_path, boot=None, log=None):
        self.tmp, self.boot, self.log = tmp_path, boot, log
        self.cfg = _hours_config(tmp_path)
        self.data = tmp_path / "data"
        ListStore(self.data).import_csv("senders", SENDERS, "senders.csv")
        self.sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
        self.procs = []

    def start(self):
        n = len(self.procs) + 1
        port, ready = free_port(), self.tmp / f"ready{n}"
        # the sessions themselves, held: a session the simulator dropped (its process killed) is freed, and a new one
        # may then get its address, so comparing id()s took the new bind for an old one (a clean-clone CI run)
        before = list(self.sim.sim.sessions)
        err = open(self.tmp / f"stderr{n}.log", "w")
        head = ["-c", self.boot] if self.boot else ["-m", "engine.cli"]
        p = subprocess.Popen([sys.executable, *head, "serve", "--config", self.cfg, "--data-dir", self.data, "-v",
                              "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{self.sim.port}",
                              "--esme-account", "t:pw", "--sip-listen", "off", "--ready-file", ready,
                              *(["--log", self.log] if self.log else [])],
                             cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
        self.procs.append(p)
        assert wait_for(ready.exists, 60), (self.tmp / f"stderr{n}.log").read_text()
        assert wait_for(lambda: any(s.bound and not any(s is b for b in before) for s in list(self.sim.sim.sessions)))
        return p, port

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.sim.stop()
