import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests: the suite (and so CI) runs them derandomised, the same examples on every run, so a
# gate that passed once passes again; `TELFILTER_HYPOTHESIS=explore python -m pytest tests` draws new
# examples each run (what the fuzz loop in the README does before a release). CI on stop 22 failed on
# a new example an exploring run drew: the bug it found is fixed and kept as a test.
settings.register_profile("gate", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("TELFILTER_HYPOTHESIS", "gate"))

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONFIG = ROOT / "config"


def run_cli(*args, input=None, check=False, env=None, timeout=None):
    """Run `telfilter` as a user would (a subprocess), returning CompletedProcess (subprocess.TimeoutExpired, the
    process killed, when `timeout` seconds pass first)."""
    e = dict(os.environ)
    e.setdefault("TELFILTER_DATA_DIR", "/nonexistent-use-explicit-data-dir")
    if env:
        e.update(env)
    p = subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], input=input, capture_output=True,
                       text=True, cwd=ROOT, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"telfilter {' '.join(map(str, args))} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(autouse=True)
def fresh_disk_trouble(monkeypatch):
    """Every test starts with no disk writer failing: the writers' state is process-wide (engine/disktrouble.py:
    `/healthz` and the metrics read it), and a test of a failing disk (the verdict log's torn write) leaves one
    failing for whatever in-process test comes next."""
    from engine import disktrouble
    monkeypatch.setattr(disktrouble, "_TROUBLE", {n: disktrouble.DiskTrouble(n) for n in disktrouble.WRITERS})


@pytest.fixture(autouse=True)
def own_tempdir(tmp_path_factory, monkeypatch):
    """The tempfile module's directory, for the test and the processes it starts ($TMPDIR), is one of this test's
    under pytest's basetemp, not /tmp; what is left in it when the test ends (a scratch dir a benchmark's child
    made and never removed, a serve killed before its own cleanup) fails the test, by name. (Fixtures of a wider
    scope are set up before this one: they see the real $TMPDIR.)"""
    d = tmp_path_factory.mktemp("tempdir")
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    yield d
    left = sorted(p.name for p in d.iterdir())
    assert not left, f"left in the test's temporary directory {d}: {left}"


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


def jsonl(lines):
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)


def pytest_configure(config):
    # smpplib warns about its own future TLV behaviour on every client; not ours to fix
    config.addinivalue_line("filterwarnings", "ignore:Unknown optional parameters:DeprecationWarning")


@pytest.fixture
def loopback_screen(tmp_path):
    """A screen on 127.0.0.1 (UDP and TCP, any port) with a plain pipeline and no next hop that answers: for what
    the screen answers itself (tests/test_sip_tcp_*)."""
    from engine.app import build
    from engine.sip_screen.harness import SipHarness
    from engine.sip_screen.server import SipSettings
    s = SipSettings(listen="127.0.0.1:0", next_hop="127.0.0.1:9", allow_networks=["127.0.0.0/8"])
    h = SipHarness(build(data_dir=tmp_path / "data", with_model=False, persist=False), s).start()
    yield h
    h.stop()
