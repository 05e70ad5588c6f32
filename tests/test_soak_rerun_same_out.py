"""`benchmarks.soak --out DIR` run again into the same DIR starts from none of the earlier run's files: the SMSC
log (appended to across the SMSC's restarts within a run) held the earlier run's lines before this run's, and
serve's `ready` file of an earlier run that was killed was taken for this serve's at once. The run itself is
stood in for: nothing is started here."""
import benchmarks.soak as soak


def test_an_earlier_runs_files_are_gone_before_the_run(tmp_path, monkeypatch):
    (tmp_path / "sipp").mkdir()
    for name in ("smsc.log", "ready", "sipp/stat.csv", "samples.jsonl", "summary.json", "soak.png"):
        (tmp_path / name).write_text("earlier run\n")
    (tmp_path / "notes.txt").write_text("the engineer's own file\n")
    seen = {}

    async def run(a):
        seen["files"] = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        return {"samples": [], "events": [], "stats": {}, "serve_exit": 0, "final": {}, "log_warnings_or_worse": [],
                "sip": {}}
    monkeypatch.setattr(soak, "_run", run)
    monkeypatch.setattr(soak, "_plot", lambda res, out: None)
    assert soak.main(["--minutes", "0.1", "--port-base", "20900", "--out", str(tmp_path)]) == 0
    assert seen["files"] == ["notes.txt"], seen["files"]


def test_a_serve_that_cannot_start_is_said_in_one_line(tmp_path):
    # a port of --port-base..+5 in use (another soak, a serve): serve stops at start, naming the port, and the soak
    # ended in a RuntimeError traceback
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks.ports import free_port
    base = free_port()
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", base + 1))          # serve's SMPP port
        busy.listen()
        p = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--minutes", "0.1", "--port-base", str(base),
                            "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parent.parent)
    finally:
        busy.close()
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert f"serve did not start; see {tmp_path / 'serve.log'}" in p.stderr, p.stderr
