"""Đ as Windows-1258 and VISCII write it (found by a Decree 91 probe): both code Đ as 0xD0 and đ as 0xF0, Latin-1's
Ð (U+00D0, ETH) and ð. fold() read ð as d but not Ð, so "ĐK DNC" from a gateway that sends Vietnamese in one of
those code pages under data_coding 3 (Latin-1) reached 5656 as "ÐK DNC" and was answered as a syntax error: the
registration was never made (a lower-case "đk dnc" went through). Ð is read as d, as ð is, and as the look-alike Ɖ
(U+0189, TR39's confusable of Đ)."""
import json

import pytest

from engine.lists import ListStore
from engine.rules.shortcode import parse
from engine.textnorm import fold
from tests.test_smpp_mo_concat import confirmations, deliver, mo, proxy, verdicts  # noqa: F401 (proxy: fixture)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401 (pipe: fixture)

from .conftest import run_cli


@pytest.mark.parametrize("text, symbol, channel", [
    ("\u00d0K DNC", "DNC_REGISTERED", "SV"),
    ("\u00d0K DNC S", "DNC_REGISTERED", "S"),
    ("\u0189K DNC V", "DNC_REGISTERED", "V"),
    ("\u00f0k dnc", "DNC_REGISTERED", "SV"),       # as before
])
def test_eth_reads_as_d_in_a_command(text, symbol, channel):
    c = parse(text, 84912000001)
    assert (c.symbol, c.channel) == (symbol, channel), c.detail


def test_eth_folds_as_d_stroke_does():
    assert fold("\u00d0\u00f0\u0189\u0110\u0111") == "ddddd"


def test_a_registration_in_windows_1258_bytes_read_as_latin_1_is_made(proxy, pipe):
    h, buf = proxy()
    src = "84911000081"
    deliver(h, mo("ĐK DNC".encode("cp1258"), src=src, dc=3, esm_class=0))
    assert wait(lambda: confirmations(h, src))
    [line] = verdicts(buf)
    assert [x["symbol"] for x in line["hits"]] == ["DNC_REGISTERED"], line
    assert ListStore(pipe.store.dir).load().in_dnc(84911000081, "S")


def test_check_registers_it_too(tmp_path, data_dir):
    f = tmp_path / "in.jsonl"
    lines = [{"id": "dk", "kind": "sms", "sender": "0912000061", "recipient": "5656", "text": "\u00d0K DNC",
              "time": "2026-11-28T10:00:00+07:00"},
             {"id": "ad", "kind": "sms", "sender": "SHOPABC", "recipient": "0912000061",
              "text": "[QC] Giam gia. TC gui 5656", "time": "2026-11-28T10:00:01+07:00"}]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run_cli("lists", "add", "senders", "SHOPABC", "--owner", "Shop ABC", "--category", "QC", "--data-dir", data_dir)
    p = run_cli("check", "--jsonl", f, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    out = {v["id"]: v for v in map(json.loads, p.stdout.splitlines())}
    assert [h["symbol"] for h in out["dk"]["hits"]] == ["DNC_REGISTERED"]
    assert [h["symbol"] for h in out["ad"]["hits"]] == ["AD_TO_DNC"]
