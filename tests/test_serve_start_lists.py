"""What serve starts with: the lists' sizes said in the service log at the start (before, only a reload said
them), and a warning when the sender registry is empty. A serve on a new or mistyped data dir judged every SMS from
a brandname unregistered (dropped SENDER_ID_UNREGISTERED by the shipped pack) and nothing in its log said why."""
import signal
import subprocess
import sys

from .conftest import ROOT
from .test_ops import _serve
from .test_serve import free_port


def _start_and_stop(tmp_path) -> str:
    p, _port = _serve(tmp_path, free_port())        # (no SMSC there: serve starts and retries its link)
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    return (tmp_path / "stderr.log").read_text()


def test_an_empty_registry_is_said_at_the_start(tmp_path):
    err = _start_and_stop(tmp_path)
    assert f"lists in {tmp_path / 'data'}: DNC S 0 V 0, senders 0, blacklist 0 numbers 0 domains 0 IP ranges, " \
           "consent 0 owners" in err, err
    assert "the sender registry in" in err and "is empty: every SMS from an alphanumeric sender ID is unregistered" \
        in err and "lists import senders FILE" in err, err


def test_the_lists_served_are_said_and_a_registry_is_not_warned_about(tmp_path):
    for kind in ("senders", "dnc"):
        subprocess.run([sys.executable, "-m", "engine.cli", "--data-dir", tmp_path / "data", "lists", "import", kind,
                        ROOT / "config" / "sample" / f"{kind}.csv"], cwd=ROOT, check=True, capture_output=True)
    err = _start_and_stop(tmp_path)
    line = [ln for ln in err.splitlines() if "lists in " in ln]
    assert len(line) == 1 and "senders 0," not in line[0] and "DNC S 0 V 0" not in line[0], err
    assert "sender registry" not in err, err
