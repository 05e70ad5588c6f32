"""How `ml promote` reads the serves it tells (found by the stop's review of the notes beside the model path):
a noted serve that only answered late was taken for a killed one and its note removed (the promote then said
"installed; serve loads it when it starts", exit 0, and that serve kept the old model for good); a serve in its
start-up wait answers every command "starting", which the promote took for a refusal of the model and put the
old model back. Now a note goes only when nothing listens on its socket, and a starting serve is asked again."""
import json
import socket
import threading
import time

from engine.analyst.promote import notify
from engine.analyst.serves import register, registered
from engine.ml.analyst_cli import _notify_serves


class FakeServe(threading.Thread):
    """A control socket on a Unix path answering each request with the next of `answers` after `delay` s."""

    def __init__(self, path, answers, delay=0.0):
        super().__init__(daemon=True)
        self.path, self.answers, self.delay = str(path), list(answers), delay
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.asked = 0

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.recv(65536)
                self.asked += 1
                time.sleep(self.delay)
                a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                try:
                    c.sendall(json.dumps(a).encode() + b"\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_a_noted_serve_that_answers_late_keeps_its_note_and_is_named(tmp_path):
    target = tmp_path / "model"
    slow = FakeServe(tmp_path / "slow.sock", [{"ok": True, "model": {"ok": True, "version": "v2"}}], delay=2.0)
    slow.start()
    try:
        register(target, tmp_path / "slow.sock")
        out = {}
        _notify_serves(target, tmp_path / "own.sock", True, 0.5, out)      # (nothing on the data dir's own socket)
        assert registered(target) == [tmp_path / "slow.sock"]             # kept: it is running, only slow
        assert "no answer within" in out["serves"][str(tmp_path / "slow.sock")]["error"], out
        register(target, tmp_path / "gone.sock")                            # a killed serve's note: removed
        _notify_serves(target, tmp_path / "own.sock", True, 0.5, {})
        assert registered(target) == [tmp_path / "slow.sock"]
    finally:
        slow.close()


def test_a_serve_in_its_start_up_wait_is_asked_again_not_taken_for_a_refusal(tmp_path):
    starting = {"ok": False, "starting": True, "error": "serve is starting: waiting up to 12 s for worker 1's files"}
    serve = FakeServe(tmp_path / "ctl.sock", [starting, starting, {"ok": True, "model": {"ok": True, "version": "v2"}},
                                              {"ok": True, "model": {"version": "v2"}}])
    serve.start()
    try:
        a = notify(tmp_path / "ctl.sock", timeout=10)
        assert (a["serve"], a["reloaded"], a["model_version"], a["error"]) == ("running", True, "v2", None), a
        assert serve.asked == 4
    finally:
        serve.close()
