"""`telfilter ctl stats --pool` asks the other workers of a `serve --workers N` pool at once: workers that are stuck
(their control socket takes the connection and never answers) cost the command its --timeout once, not once each
in turn (three stuck workers and `--timeout 1` took over 3 s).

Real Unix sockets in the test's tmp dir: worker 0 answers its `stats` from a thread; workers 1-3 listen and never
accept. Every socket is closed by the test."""
import json
import socket
import threading
import time

from engine.cli_parser import parser
from engine.control import worker_socket
from engine.control_client import cmd_ctl

STUCK = 3
TIMEOUT = 1.0


def answering(path, answer: dict):
    """A listening socket that answers one request with `answer`; (the socket, its thread)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()

    def serve():
        c, _ = s.accept()
        with c:
            buf = b""
            while not buf.endswith(b"\n"):
                buf += c.recv(65536)
            c.sendall(json.dumps(answer).encode() + b"\n")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s, t


def stuck_workers(base, workers) -> list:
    """Worker i's control socket for each i in `workers`: it listens, and the connections the kernel takes for it
    are never answered (a stuck worker)."""
    stuck = []
    for i in workers:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(worker_socket(base, i)))
        s.listen()
        stuck.append(s)
    return stuck


def test_stuck_workers_cost_one_timeout_together(tmp_path, capsys):
    base = tmp_path / "control.sock"
    w0, t0 = answering(base, {"ok": True, "pool_size": STUCK + 1, "smpp": {"submit_sm": 5}})
    stuck = stuck_workers(base, range(1, STUCK + 1))
    try:
        args = parser().parse_args(["ctl", "--socket", str(base), "--timeout", str(TIMEOUT), "stats", "--pool"])
        t = time.monotonic()
        rc = cmd_ctl(args)
        took = time.monotonic() - t
    finally:
        t0.join(5)
        for s in [w0, *stuck]:
            s.close()
    ans = json.loads(capsys.readouterr().out)
    assert rc == 1 and ans["ok"] is False
    assert sorted(i for i, w in ans["workers"].items() if not w.get("ok")) == [str(i) for i in range(1, STUCK + 1)]
    assert all("no answer within" in ans["workers"][str(i)]["error"] for i in range(1, STUCK + 1)), ans
    assert ans["pool"]["smpp"] == {"submit_sm": 5}          # worker 0's figures, the partial sum
    # asked in turn: STUCK timeouts (3 s); together: one, and the command stays within it
    assert took < TIMEOUT * 1.8, took
