"""The control socket's protocol is strict (engine/control_keys.py): a key a command does not take, or a known key of
the wrong type, refuses the whole request with an error naming the key, and nothing is done. A misspelt
{"cmd": "reload", "parts": ["rules"]} reloaded every part, the model too. And `telfilter ctl` (every action, `stats
--pool`) sends only keys the server takes (a pool's worker 0 asking the others for `metrics`:
tests/test_metrics_pool.py).

A real ControlServer on a Unix socket in the test's tmp dir, stopped by each test."""
import asyncio
import json

import pytest

from engine.app import build
from engine.cli_parser import parser
from engine.control import ControlServer
from engine.control_keys import request_error
from engine.control_reload import RELOAD_PARTS


def _talk(tmp_path, requests, monkeypatch):
    """Each request's answer from a real ControlServer, the reload parts it ran and whether it drained."""
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)
    ran, drained = [], []

    def fake(part):
        async def run(*_):
            ran.append(part)
            return {"ok": True}
        return run
    for part in RELOAD_PARTS:
        monkeypatch.setattr(ControlServer, f"_reload_{part}", lambda self, *a, _p=part: fake(_p)(*a))

    async def main():
        ctl = ControlServer(pipe, tmp_path / "c.sock", on_drain=lambda: drained.append(1))
        await ctl.start()
        try:
            r, w = await asyncio.open_unix_connection(str(tmp_path / "c.sock"))
            answers = []
            for req in requests:
                w.write(json.dumps(req).encode() + b"\n")
                answers.append(json.loads(await asyncio.wait_for(r.readline(), 10)))
            w.close()
            return answers
        finally:
            await ctl.stop()
    return asyncio.run(main()), ran, drained, pipe


@pytest.mark.parametrize("req, key", [
    ({"cmd": "reload", "parts": ["rules"]}, "'parts'"),         # misspelt: reloaded every part, the model too
    ({"cmd": "reload", "parts": "rules"}, "'parts'"),
    ({"cmd": "reload", "what": ""}, "'what'"),                  # falsy: was "none = all"
    ({"cmd": "reload", "what": []}, "'what'"),                  # nothing named: was every part, the model too
    ({"cmd": "reload", "what": "rules"}, "'what'"),
    ({"cmd": "reload", "what": ["rules"], "ful": True}, "'ful'"),
    ({"cmd": "stats", "pool": True}, "'pool'"),
    ({"cmd": "drain", "now": True}, "'now'"),
    ({"cmd": "metrics", "worker": 1}, "'worker'"),
    ({"cmd": "lists", "op": "add", "kind": "dnc", "value": "84912000777", "chanel": "S"}, "'chanel'"),
    ({"cmd": "lists", "op": "add", "kind": "dnc", "value": 84912000777}, "'value'"),
])
def test_an_unknown_or_mistyped_key_refuses_the_request_and_names_it(tmp_path, monkeypatch, req, key):
    (ans,), ran, drained, pipe = _talk(tmp_path, [req], monkeypatch)
    assert ans["ok"] is False and key in ans["error"], ans
    assert ran == [] and drained == [] and 84912000777 not in pipe.lists.dnc_s


def test_the_keys_a_command_takes_still_work(tmp_path, monkeypatch):
    answers, ran, _, _ = _talk(tmp_path, [{"cmd": "reload", "what": ["rules"]}, {"cmd": "reload", "what": None},
                                       {"cmd": "reload", "what": ["lists"], "full": True}, {"cmd": "stats"}],
                            monkeypatch)
    assert [a["ok"] for a in answers] == [True] * 4
    assert ran == ["rules", *RELOAD_PARTS, "lists"]


def _sent(tmp_path, monkeypatch, argv):
    """The requests `telfilter ctl ARGV` sends (every worker's too, a pool of 2 answering)."""
    import engine.control_client as cc
    sent = []

    def once(path, req, timeout):
        sent.append(req)
        return {"ok": True, "pool_size": 2}
    monkeypatch.setattr(cc, "_request_once", once)
    (tmp_path / "c.w1.sock").touch()        # a pool's worker 1 beside worker 0's socket: a reload asks it too
    assert cc.cmd_ctl(parser().parse_args(["ctl", "--socket", str(tmp_path / "c.sock"), *argv])) == 0
    return sent


@pytest.mark.parametrize("argv", [["stats"], ["stats", "--pool"], ["drain"], ["reload"], ["reload", "rules", "model"],
                                  ["reload", "lists", "--full"], ["lists", "add", "dnc", "84912000777"],
                                  ["lists", "remove", "dnc", "84912000777", "--channel", "S"],
                                  ["lists", "add", "senders", "SHOPABC", "--owner", "Shop", "--category", "QC"],
                                  ["lists", "remove", "consent", "84912000777", "--owner", "Shop"],
                                  ["lists", "add", "blacklist", "spam.example"]])
def test_ctl_sends_only_keys_the_server_takes(tmp_path, monkeypatch, argv):
    sent = _sent(tmp_path, monkeypatch, argv)
    assert len(sent) == (2 if argv[0] == "reload" or "--pool" in argv else 1)
    assert [request_error(r) for r in sent] == [None] * len(sent), sent

