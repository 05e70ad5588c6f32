"""Interop with node-smpp (an independent SMPP implementation, npm package `smpp`, pinned in
tests/interop/package.json + package-lock.json) as the ESME in front of the proxy; our SMSC simulator behind it.

tests/interop/esme.js binds as a transceiver, submits "[QC] ..." from a plain number with node-smpp's default
encoding (GSM 03.38 septets under data_coding 1, issue #15) and again under data_coding 0, submits an allowed
text with a receipt requested, and waits for that receipt. Both [QC] submits must get the drop status with
AD_SENDER_NOT_QC in the verdict (the client's encoding choice must not change the verdict); the allowed one is
forwarded byte for byte and its receipt reaches node-smpp carrying the message_id the ESME was given.

node-smpp is installed with `npm ci` once per lockfile into a cache dir ($TELFILTER_NPM_DIR, default
~/.cache/telfilter/node-smpp-<lock hash>); the test is skipped with the reason when node, npm or the registry
is unavailable."""
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine.app import build
from engine.loopthread import LoopThread
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.server import SmppProxy
from engine.verdictlog import VerdictLog

from .conftest import ROOT

NODE, NPM = shutil.which("node"), shutil.which("npm")
INTEROP = ROOT / "tests" / "interop"
pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="node/npm not installed (apt-get install -y nodejs npm)")


def node_modules() -> Path:
    """node_modules holding the pinned node-smpp, installed once per lockfile (atomically: a failed or
    interrupted install never leaves a half-filled dir that a later run would trust)."""
    lock = (INTEROP / "package-lock.json").read_bytes() + (INTEROP / "package.json").read_bytes()
    base = Path(os.environ.get("TELFILTER_NPM_DIR") or Path.home() / ".cache" / "telfilter")
    d = base / f"node-smpp-{hashlib.sha256(lock).hexdigest()[:12]}"
    if (d / "node_modules" / "smpp" / "package.json").exists():
        return d / "node_modules"
    tmp = base / f"{d.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(INTEROP / f, tmp / f)
    try:
        p = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=tmp,
                           capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        p = None
    if p is None or p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip("npm ci of node-smpp failed (registry unavailable?): "
                    + ("timeout after 180 s" if p is None else p.stderr.strip()[-500:]))
    try:
        tmp.rename(d)
    except OSError:                      # another run installed it meanwhile: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return d / "node_modules"


@pytest.fixture(scope="module")
def node_path():
    return node_modules()


@pytest.fixture
def proxied(tmp_path):
    log = open(tmp_path / "verdicts.jsonl", "w")
    h = ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("esme1:secret",), verdict_log=VerdictLog(log),
                     receipt_delay=0.05).start()
    yield h, tmp_path / "verdicts.jsonl"
    h.stop()
    log.close()


def verdicts(path, n, timeout=5):
    """The first n verdict lines (the log is flushed within VerdictLog.FLUSH_S)."""
    end = time.time() + timeout
    while True:
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if len(lines) >= n or time.time() > end:
            return lines
        time.sleep(0.05)


def test_node_smpp_esme_gsm_bytes_qc_dropped_allowed_forwarded_receipt_back(node_path, proxied):
    h, vpath = proxied
    p = subprocess.run([NODE, str(INTEROP / "esme.js"), str(h.port), "esme1", "secret"], capture_output=True,
                       text=True, timeout=40, env={**os.environ, "NODE_PATH": str(node_path)})
    steps = {}
    for line in p.stdout.splitlines():
        o = json.loads(line)
        steps.setdefault(o["step"], o)
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert steps["bind"]["command_status"] == 0

    # the client's encoding choice (data_coding 1 or 0, same GSM bytes) does not change the verdict
    assert steps["qc"]["command_status"] == steps["qc_dc0"]["command_status"] == C.ESME_RSUBMITFAIL
    v = verdicts(vpath, 3)
    assert [x["action"] for x in v] == ["drop", "drop", "allow"], v
    for x in v[:2]:
        assert "AD_SENDER_NOT_QC" in {hit["symbol"] for hit in x["hits"]}, x

    # only the allowed text reached the SMSC, as node-smpp encoded it: GSM septets ("@" = 0x00) under 1
    subs = h.sim.submits()
    assert len(subs) == 1, subs
    assert subs[0].data_coding == 1 and b"\x00" in subs[0].short_message and b"@" not in subs[0].short_message

    # the receipt came back to node-smpp naming the id it was given in submit_sm_resp
    mid = steps["allowed"]["message_id"]
    assert steps["allowed"]["command_status"] == 0 and mid
    r = steps["deliver_sm"]
    assert r["esm_class"] & 0x04 and r["receipted_message_id"] == mid and f"id:{mid} " in r["text"], r
    assert r["destination_addr"] == "0901234567"


# ------------------------------------------------------------------- node-smpp as the SMSC behind the proxy

class ProxyTo(LoopThread):
    """The proxy alone on 127.0.0.1, its upstream the given SMSC address."""

    def __init__(self, pipeline, smsc_port, vlog):
        super().__init__("smpp-proxy-to-node")
        self.settings = SmppSettings(smsc=[f"127.0.0.1:{smsc_port}"])
        acc = account_from_arg("esme1:secret")
        self.settings.accounts[acc.system_id] = acc
        self.proxy = SmppProxy(pipeline, self.settings, vlog)

    def start(self):
        self.start_loop()
        self.call(self.proxy.start("127.0.0.1:0"))
        if not self.call(self.proxy.wait_upstream(10)):
            self.stop()
            raise AssertionError("the proxy did not bind to the node-smpp SMSC")
        return self

    def stop(self):
        try:
            self.call(self.proxy.stop())
        finally:
            self.stop_loop()


def events(lines):
    return [json.loads(x) for x in lines if x.strip()]


@pytest.mark.parametrize("mode", ["after", "before"])
def test_node_smpp_smsc_on_tx_rx_receipts_right_after_or_before_the_resp_all_reach_the_esme(node_path, tmp_path, mode):
    """Issue #15, first fault, with node-smpp on both sides: the SMSC refuses transceiver binds and sends
    each receipt on the receiver bind in the same tick as the submit_sm_resp on the transmitter bind (after
    it, or before it). Every receipt reaches the ESME naming the id it was given, and the SMSC sees every
    receipt acknowledged with status 0 (none acknowledged and dropped, none refused)."""
    n = 20
    env = {**os.environ, "NODE_PATH": str(node_path)}
    smsc = subprocess.Popen([NODE, str(INTEROP / "smsc.js"), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    log = open(tmp_path / "verdicts.jsonl", "w")
    proxy = None
    try:
        first = json.loads(smsc.stdout.readline() or "{}")
        assert "port" in first, smsc.stderr.read()[-2000:]
        proxy = ProxyTo(build(data_dir=tmp_path / "data"), first["port"], VerdictLog(log)).start()
        p = subprocess.run([NODE, str(INTEROP / "esme.js"), str(proxy.proxy.port), "esme1", "secret", str(n)],
                           capture_output=True, text=True, timeout=40, env=env)
    finally:
        if proxy is not None:
            proxy.stop()
        smsc.terminate()
        rest, err = smsc.communicate(timeout=10)
        log.close()
    esme, ev = events(p.stdout.splitlines()), events(rest.splitlines())
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:] + rest[-2000:]

    # the fallback really happened: transceiver refused, then a transmitter and a receiver bind
    binds = [(e["kind"], e["command_status"]) for e in ev if e.get("ev") == "bind"]
    assert binds[0] == ("transceiver", 3) and {("transmitter", 0), ("receiver", 0)} <= set(binds), binds

    allowed = [e["message_id"] for e in esme if e["step"] == "allowed"]
    got = next(e for e in esme if e["step"] == "receipts")["ids"]
    assert len(allowed) == n and sorted(got) == sorted(allowed)
    submits = [e for e in ev if e.get("ev") == "submit"]
    assert len(submits) == n and all(s["data_coding"] == 1 for s in submits)
    acks = [e for e in ev if e.get("ev") == "receipt_resp"]
    assert len(acks) == n and all(a["command_status"] == 0 for a in acks), acks
