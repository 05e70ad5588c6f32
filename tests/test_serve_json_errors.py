"""`serve --log-format json`: every line serve writes to stderr is a JSON object, its start-up errors too (a log
collector parses them). A bad config, a broken rule file, a port in use, a missing file and a refused
--workers/--state were printed as plain text lines (`telfilter: error: …`, `telfilter serve: …`) among the JSON
ones. They are JSON objects now (level ERROR, msg the text line as before); the exit codes are unchanged."""
import json
import shutil
import socket

import pytest

from .conftest import CONFIG, run_cli


def _serve(tmp_path, *flags):
    return run_cli("serve", "--log-format", "json", "--data-dir", tmp_path / "d", "--sip-listen", "off",
                   "--smsc", "127.0.0.1:9", "--control-socket", "off", "--log", tmp_path / "v.jsonl", *flags)


def _json_lines(p) -> list:
    lines = p.stderr.strip().splitlines()
    assert lines, p
    out = []
    for ln in lines:
        try:
            out.append(json.loads(ln))
        except ValueError:
            pytest.fail(f"not a JSON line: {ln!r}\n{p.stderr}")
    return out


def _config(tmp_path, name, tail):
    c = tmp_path / "cfg"
    shutil.copytree(CONFIG, c)
    with open(c / name, "a") as f:
        f.write(tail)
    return c


@pytest.mark.parametrize("case", ["bad_config", "bad_rules", "missing_file", "workers_0", "workers_no_state",
                                  "bad_state_url", "bad_listen", "log_is_a_directory", "workers_too_many",
                                  "config_is_a_file"])
def test_start_up_errors_are_json_lines(tmp_path, case):
    flags = {
        "bad_config": ["--config", lambda: _config(tmp_path, "smpp.toml", "listen = [\n")],
        "bad_rules": ["--config", lambda: _config(tmp_path, "rules/40-spam-senders.toml", "oops = [\n")],
        "missing_file": ["--esme-accounts-file", tmp_path / "nope"],
        "workers_0": ["--workers", "0"],
        "workers_too_many": ["--workers", "100000"],        # (a typo's thousand processes: refused)
        "workers_no_state": ["--workers", "2"],
        "bad_state_url": ["--state", "bogus://x"],
        "bad_listen": ["--smpp-listen", "nope"],
        "log_is_a_directory": [],
        "config_is_a_file": ["--config", tmp_path / "v.jsonl"],        # (said before serve reads any file)
    }[case]
    flags = [f() if callable(f) else f for f in flags]
    if case == "log_is_a_directory":
        (tmp_path / "logs").mkdir()
        flags = ["--log", tmp_path / "logs"]
    p = _serve(tmp_path, "--smpp-listen", "127.0.0.1:0", *flags)
    assert p.returncode == 2, p.stderr
    lines = _json_lines(p)
    assert lines[-1]["level"] == "ERROR" and lines[-1]["msg"], lines


def test_a_port_in_use_is_a_json_line(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        p = _serve(tmp_path, "--smpp-listen", f"127.0.0.1:{port}")
    finally:
        s.close()
    assert p.returncode == 2, p.stderr
    last = _json_lines(p)[-1]
    assert last["level"] == "ERROR"
    assert last["msg"] == f"telfilter serve: error: SMPP listen 127.0.0.1:{port}: Address already in use"


def test_text_format_keeps_its_plain_lines(tmp_path):
    p = run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", "off", "--workers", "0")
    assert p.returncode == 2 and p.stderr.strip() == "telfilter serve: error: --workers 0: 1 to 256"
    p = run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", "off", "--workers", "100000",
                "--state", "redis://127.0.0.1:9/0")
    assert p.returncode == 2 and p.stderr.strip() == "telfilter serve: error: --workers 100000: 1 to 256"


def test_an_unexpected_error_is_a_json_line_with_its_traceback(tmp_path):
    """A bug that stops serve: Python printed its traceback as plain lines; now one JSON object with "exc", exit 1
    (Python's status for it)."""
    import subprocess
    import sys
    from .conftest import ROOT
    code = ("import sys, engine.serve as s\n"
            "async def boom(args):\n    raise RuntimeError('boom')\n"
            "s.run_serve = boom\n"
            "from engine.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", code, "serve", "--log-format", "json", "--data-dir", str(tmp_path / "d"),
                        "--sip-listen", "off", "--control-socket", "off"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, p.stderr
    last = _json_lines(p)[-1]
    assert last["level"] == "ERROR" and "RuntimeError: boom" in last["msg"] and "Traceback" in last["exc"]


def test_a_worker_threads_error_and_a_python_warning_are_json_lines_too():
    """Left by the ops helper (stop 48): with --log-format json, a worker thread's uncaught exception (Python's
    threading.excepthook prints a plain traceback) and a Python warning (printed as `file:line: UserWarning: …`)
    came out as plain text among the JSON lines."""
    import subprocess
    import sys
    code = ("import logging, sys, threading, warnings\n"
            "logging.basicConfig(stream=sys.stderr)\n"
            "from engine.servicelog import setup_service_logging\n"
            "setup_service_logging(False, 'json')\n"
            "t = threading.Thread(target=lambda: 1 / 0, name='w1'); t.start(); t.join()\n"
            "warnings.warn('an old setting', UserWarning)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = _json_lines(p)
    died = [x for x in lines if "thread w1 stopped" in x.get("msg", "")]
    assert died and died[0]["level"] == "ERROR" and "ZeroDivisionError" in died[0].get("exc", "")
    assert any("an old setting" in x.get("msg", "") for x in lines)


@pytest.mark.parametrize("argv,said", [
    (["serve", "--log-format", "json", "--workers", "x"], "argument --workers: invalid int value: 'x'"),
    (["serve", "--log-format=json", "--bogus"], "unrecognized arguments: --bogus"),
    (["--data-dir", "/nonexistent", "serve", "--smpp-listen", "127.0.0.1:0", "--log-f", "json", "--drain-timeout"],
     "argument --drain-timeout: expected one argument"),
])
def test_a_usage_error_is_a_json_line_too(argv, said):
    """A command line argparse could not read was answered with its plain usage text before the log format was
    known (the README's known gap): with `--log-format json` on it (spelt as argparse takes it) it is one JSON line at
    ERROR, exit 2 as in text."""
    p = run_cli(*argv)
    assert p.returncode == 2, p.stderr
    (line,) = _json_lines(p)
    assert line["level"] == "ERROR" and line["msg"].startswith("telfilter") and said in line["msg"], line


def test_a_usage_error_stays_plain_without_json():
    """Without `serve --log-format json` (text, another command, or json named only as a value) argparse's
    usage text is unchanged."""
    for argv in (["serve", "--bogus"], ["serve", "--log-format", "text", "--bogus"],
                 ["check", "--bogus", "--log-format", "json"], ["serve", "--log", "json", "--bogus"]):
        p = run_cli(*argv)
        assert p.returncode == 2 and p.stderr.startswith("usage: telfilter"), (argv, p.stderr)
        assert "error: unrecognized arguments: --bogus" in p.stderr
