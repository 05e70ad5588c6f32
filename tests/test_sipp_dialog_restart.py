"""A call in progress across a clean restart of `telfilter serve` (an upgrade in business hours), with sipp as caller
and callee on 127.0.0.1: an advertiser's call (one call a day to a callee: AD_CALL_FREQUENCY_CAP) is answered; serve
is stopped with SIGTERM and started again on the same data dir and ports; the call's RFC 4028 session refresh
(re-INVITE) reaches the callee and is answered -- before, the new process judged it as a new call and refused it
608 by the call's own count (the call torn down), a second verdict line -- and the caller's BYE records the
call's duration, the restart included. The screen's memory of answered calls is saved at the stop and read back
at the start (engine/sip_screen/dialogstore.py); tests/test_sip_dialog_restart.py covers the file itself. The same
call across a crash (SIGKILL): the memory saved while serve runs (engine/sip_screen/dialogsave.py)."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.state import install, open_state

from .conftest import CONFIG, ROOT
from .test_kamailio_interop import sipp_errors, uas_done
from .test_serve import free_port, wait_for, wait_ready
from .test_sipp_ims_flows import free_port as free_sip_port

SIPP = shutil.which("sipp")
SC = ROOT / "tests" / "sipp"
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (the README test command installs it)")

AD_CALLER, CALLEE = "02439998888", "0912345678"
PAUSE_MS = 4000                 # between the call's answer and its refresh: the restart happens meanwhile


def serve(tmp, cfg, data, sip_port, uas_port, smpp_port, n):
    ready = tmp / f"ready{n}"
    err = open(tmp / f"serve{n}.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", data,
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--esme-account", "t:pw",
                          "--sip-listen", f"127.0.0.1:{sip_port}", "--sip-next-hop", f"127.0.0.1:{uas_port}",
                          "--sip-allow-networks", "127.0.0.0/8", "--log", tmp / "verdicts.jsonl",
                          "--ready-file", ready, "-v"], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    err.close()
    wait_ready(p, ready, tmp / f"serve{n}.log")
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return p.returncode


def uac_ran(stderr):
    """What sipp_errors reads of a finished sipp run: its stderr."""
    return subprocess.CompletedProcess([], 0, "", stderr or "")


def verdicts(tmp):
    path = tmp / "verdicts.jsonl"
    # (whole lines: read while serve appends, and a write is not atomic for a reader past a page boundary)
    return [json.loads(l) for l in path.read_text().split("\n")[:-1]] if path.exists() else []


def configure(tmp_path, save_interval=None):
    """A config dir and a data dir for the test's serve: AD_CALLER an advertiser, no SMSC; sip.toml's
    dialog_save_interval `save_interval` when given."""
    cfg, data = tmp_path / "config", tmp_path / "data"
    shutil.copytree(CONFIG, cfg)
    # advertising hours are 08:00-17:00 +07 and this test runs at any hour: the hours rule is not under test here
    rf = cfg / "rules" / "30-advertising-calls.toml"
    rf.write_text(re.sub(r'\[\[rule\]\]\nsymbol = "AD_CALL_OUTSIDE_HOURS".*?(?=\n\[\[rule\]\])', "",
                         rf.read_text(), flags=re.S))
    assert '\nsymbol = "AD_CALL_OUTSIDE_HOURS"' not in rf.read_text()
    sm = cfg / "smpp.toml"                          # no SMSC: SMPP is not under test (and nothing connects out)
    sm.write_text(re.sub(r'(?m)^smsc = .*$', "smsc = []", sm.read_text()))
    ListStore(data).import_csv("senders", f"sender,owner,category,valid_from,valid_to,accounts\n"
                                          f"{AD_CALLER},Shop ABC,QC,,,\n".encode())
    if save_interval is not None:
        st = cfg / "sip.toml"
        st.write_text(re.sub(r'(?m)^dialog_save_interval = .*$', f"dialog_save_interval = {save_interval}",
                             st.read_text()))
        assert f"\ndialog_save_interval = {save_interval}\n" in st.read_text()
    return cfg, data


def call_parties(tmp_path, sip_port, uas_port, pause_ms=PAUSE_MS):
    """sipp as callee (at uas_port) and as the advertiser calling through the screen at sip_port: the call is
    answered, then refreshed (re-INVITE) after `pause_ms` and ended by the caller's BYE."""
    base = [SIPP, "-i", "127.0.0.1", "-ci", "127.0.0.1", "-t", "u1", "-m", "1", "-s", CALLEE, "-nostdin", "-trace_err"]
    uas = subprocess.Popen([*base, "-sf", str(SC / "uas_restart.xml"), "-p", str(uas_port), "-timeout", "60s",
                            "-timeout_error", "-error_file", str(tmp_path / "uas_err.log")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    time.sleep(0.2)
    try:
        uac = subprocess.Popen([*base, f"127.0.0.1:{uas_port}", "-sf", str(SC / "uac_restart.xml"),
                                "-p", str(free_sip_port()), "-rsa", f"127.0.0.1:{sip_port}", "-key", "caller",
                                AD_CALLER, "-d", str(pause_ms), "-timeout", "60s", "-timeout_error",
                                "-error_file", str(tmp_path / "uac_err.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    except BaseException:
        uas_done(uas, 0)
        raise
    return uas, uac


def recorded_durations(data):
    """The advertiser's calls ended, as the state store holds them."""
    pipe = build(data_dir=data, with_model=False, persist=False)
    store = open_state(None, data)
    install(pipe, store)
    return [d for _, d in pipe.state.calls.recent(int("84" + AD_CALLER[1:]))]


def _ad_call_across_a_restart(tmp_path, cfg, data, end_first, pause_ms=PAUSE_MS):
    """An advertiser's call through serve, answered; `end_first(p)` ends that serve (a stop, a kill) and returns when
    the call's pause is counted from; a second serve on the same data dir takes the call's refresh (within the
    pause) and its BYE. The refresh is not judged: one verdict line for the call, over both processes; the BYE
    recorded the call's end, its duration the whole call (pause + restart + ~1 s after the refresh), the time down
    included."""
    sip_port, uas_port, smpp_port = free_sip_port(), free_sip_port(), free_port()
    p = serve(tmp_path, cfg, data, sip_port, uas_port, smpp_port, 1)
    uas = uac = None
    try:
        uas, uac = call_parties(tmp_path, sip_port, uas_port, pause_ms)
        assert wait_for(lambda: len(verdicts(tmp_path)) == 1, 10), (tmp_path / "serve1.log").read_text()
        assert verdicts(tmp_path)[0]["action"] == "allow"
        t0 = end_first(p)
        p = serve(tmp_path, cfg, data, sip_port, uas_port, smpp_port, 2)
        assert time.monotonic() - t0 < pause_ms / 1000, "the restart took longer than the call's pause"
        assert "SIP: 1 calls in progress restored from" in (tmp_path / "serve2.log").read_text()
        _, said = uac.communicate(timeout=60)
        uas_done(uas, 15)
        assert uac.returncode == 0 and uas.returncode == 0, (sipp_errors(tmp_path, uac_ran(said)), verdicts(tmp_path))
    finally:
        if uac is not None and uac.poll() is None:
            uac.kill()
            uac.wait()
        uas_done(uas, 0)
        code = stop(p)
    assert code == 0
    assert [v["action"] for v in verdicts(tmp_path)] == ["allow"]       # the refresh not judged (no 608)
    (duration,) = recorded_durations(data)                # the BYE recorded the call
    assert pause_ms / 1000 + 0.5 <= duration <= pause_ms / 1000 + 15, duration


def test_an_answered_ad_calls_refresh_passes_a_clean_restart_of_serve_and_its_bye_is_timed(tmp_path):
    cfg, data = configure(tmp_path)

    def clean_stop(p):
        time.sleep(0.5)                                 # the 200 and its ACK relayed: the call is in progress
        t_stop = time.monotonic()
        assert stop(p) == 0, (tmp_path / "serve1.log").read_text()
        log1 = (tmp_path / "serve1.log").read_text()
        assert "SIP: 1 calls in progress saved to" in log1, log1
        return t_stop
    _ad_call_across_a_restart(tmp_path, cfg, data, clean_stop)


SAVE_S = 0.5                    # dialog_save_interval of the crash test's serve


def test_an_answered_ad_calls_refresh_passes_a_crash_of_serve_and_its_bye_is_timed(tmp_path):
    """serve killed with SIGKILL (a crash, the OOM killer) a few seconds after the call was answered: no stop, no
    stop's save. Before, the next serve knew nothing of the call (the file held the last clean stop's calls): its
    refresh was judged as a new call and refused 608 by its own 1-a-day count, its BYE recorded nothing. Now the
    periodic save (engine/sip_screen/dialogsave.py) had written it within dialog_save_interval -- and wrote
    nothing more while the memory did not change."""
    cfg, data = configure(tmp_path, SAVE_S)
    saved = data / "sip" / "dialogs.msgpack"

    def crash(p):
        t_call = time.monotonic()
        assert wait_for(saved.exists, 10 * SAVE_S), (tmp_path / "serve1.log").read_text()

        # the 200 (a change: saved again) and its ACK relayed: no write for 2 save intervals (on a loaded host the
        # relay may come later than a fixed pause; a save every interval never settles)
        def settled():
            a = saved.stat()
            time.sleep(2 * SAVE_S)
            b = saved.stat()
            return (a.st_ino, a.st_mtime_ns) == (b.st_ino, b.st_mtime_ns)
        assert wait_for(settled, 20 * SAVE_S)
        st = saved.stat()
        time.sleep(4 * SAVE_S)                          # the call goes on, nothing changes: nothing written
        assert (saved.stat().st_ino, saved.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
        p.kill()                                        # SIGKILL: no stop
        p.wait()
        assert "calls in progress saved to" not in (tmp_path / "serve1.log").read_text()
        return t_call
    _ad_call_across_a_restart(tmp_path, cfg, data, crash, pause_ms=8000)
