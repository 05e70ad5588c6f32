"""Ctrl-C during a command is one line, not a traceback, and the process still dies of SIGINT so a calling shell
loop stops (found by the CLI audit: `rules test` and `ml cv` interrupted printed a KeyboardInterrupt traceback)."""
import os
import signal
import socket
import subprocess
import sys

import pytest

import engine.commands
from engine.cli import main

from .conftest import ROOT


def test_ctrl_c_is_one_line_and_death_by_sigint(tmp_path):
    path = str(tmp_path / "control.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    srv.settimeout(60)
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "ctl", "stats", "--socket", path, "--timeout", "60"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        conn, _ = srv.accept()          # the command is running: waiting for an answer that never comes
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1]
    finally:
        p.kill() if p.poll() is None else None
        srv.close()
    conn.close()
    assert err == "telfilter: interrupted\n"
    assert p.returncode == -signal.SIGINT


def test_ctrl_c_inside_main_called_with_arguments_returns_130(monkeypatch, capsys, tmp_path):
    """Called in-process (tests, a wrapper script) it returns rather than killing its caller."""
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(engine.commands, "cmd_lists", interrupted)
    try:
        rc = main(["lists", "stats", "--data-dir", str(tmp_path)])
    except KeyboardInterrupt:           # (not left to reach pytest: it would end the session)
        pytest.fail("KeyboardInterrupt escaped main()")
    assert rc == 130
    assert capsys.readouterr().err == "telfilter: interrupted\n"


def test_ctrl_c_keeps_what_was_printed_to_a_pipe(tmp_path):
    """Python's own death by SIGINT flushes stdout first (Py_FinalizeEx, then the kill); the kill from main() must
    too: `ml predict --jsonl big > out` interrupted lost its last 8 KB of answers and left a torn last line."""
    script = ("import sys, engine.commands, engine.cli\n"
              "def cmd(args):\n"
              "    for i in range(100):\n"
              "        print(f'answer {i}')\n"       # stdout to a pipe: block-buffered
              "    raise KeyboardInterrupt\n"
              "engine.commands.cmd_lists = cmd\n"
              f"sys.argv = ['telfilter', 'lists', 'stats', '--data-dir', {str(tmp_path)!r}]\n"
              "sys.exit(engine.cli.main())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.stderr == "telfilter: interrupted\n"
    assert r.returncode == -signal.SIGINT
    assert r.stdout.splitlines() == [f"answer {i}" for i in range(100)]


def test_ctrl_c_during_check_jsonl_takes_its_progress_bar_down_first(monkeypatch, capsys, tmp_path):
    """A long `check --jsonl` (the run one interrupts) shows a bar on the terminal; it was left drawn, so
    'telfilter: interrupted' was written on the bar's line ('judging:  12%|█▏  | 1.2M/10.0M …telfilter: interrupted')."""
    import engine.app
    import engine.jsonl
    closed = []

    class Bar:
        def update(self, n=1):
            pass

        def close(self):
            closed.append(True)

    class Pipe:
        def judge(self, rec):
            raise KeyboardInterrupt
    monkeypatch.setattr(engine.jsonl, "progress_bar", lambda *a, **k: Bar())
    monkeypatch.setattr(engine.app, "build", lambda *a, **k: Pipe())
    src = tmp_path / "in.jsonl"
    src.write_text('{"kind": "sms", "sender": "0912345678", "recipient": "0987654321", "text": "hi", '
                   '"time": "2026-01-01T08:00:00+07:00"}\n')
    try:
        rc = main(["check", "--jsonl", str(src), "--out", str(tmp_path / "v.jsonl")])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")
    assert rc == 130
    assert closed == [True]
    assert not (tmp_path / "v.jsonl").exists()          # the output is whole or absent
