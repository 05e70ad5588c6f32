"""`lists add` says what it stored, as `lists export` writes it: the value is read in any form (a number with
spaces, a link to an address, a Unicode domain) and the kind of a blacklist entry is guessed from its form (a
bare 3221225991 is a number, +32…, where `http://3221225991/` is the address 192.0.2.7). It echoed the value as
typed, and the engineer had to export the whole list to see what went in."""
import json

import pytest

from .conftest import run_cli


@pytest.mark.parametrize("argv, stored", [
    (("dnc", "091 234 5690", "--channel", "s"), "+84912345690,S"),
    (("blacklist", "3221225991"), "number,+3221225991"),
    (("blacklist", "http://0xC0000207/"), "ip,192.0.2.7"),
    (("blacklist", "Ví-Dụ.VN."), "domain,xn--v-d-rma6749a.vn"),
    (("senders", "shopz", "--owner", "Shop, Z", "--category", "qc", "--accounts", "b a"), 'shopz,"Shop, Z",QC,,,a b'),
    (("consent", "84912345678", "--owner", "Cty A"), "Cty A,+84912345678"),
])
def test_add_says_the_row_it_stored_as_export_writes_it(tmp_path, argv, stored):
    d = str(tmp_path)
    r = run_cli("lists", "add", *argv, "--data-dir", d)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stored"] == stored
    assert stored in run_cli("lists", "export", argv[0], "--data-dir", d).stdout.splitlines()


@pytest.mark.parametrize("kind, value, channel, extra, stored", [
    ("dnc", "091 234 5690", "S", None, "+84912345690,S"),
    ("blacklist", "3221225991", "SV", None, "number,+3221225991"),
    ("blacklist", "http://0xC0000207/", "SV", None, "ip,192.0.2.7"),
    ("consent", "84912345678", "SV", ["Cty A"], "Cty A,+84912345678"),
])
def test_ctl_lists_add_says_the_row_it_stored_too(tmp_path, kind, value, channel, extra, stored):
    """Found by the ops walkthrough: `ctl lists add` (a running serve's change) answered the value as typed, where the
    offline `lists add` says the row stored."""
    import asyncio

    from engine.app import build
    from engine.control import ControlServer
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=True)
    srv = ControlServer(pipe, tmp_path / "c.sock", on_drain=lambda: None)
    ans = asyncio.run(srv.lists({"op": "add", "kind": kind, "value": value, "channel": channel, "extra": extra}))
    assert ans["ok"] and ans["stored"] == stored, ans
    assert "stored" not in asyncio.run(srv.lists({"op": "remove", "kind": kind, "value": value, "channel": channel,
                                                  "extra": extra}))
