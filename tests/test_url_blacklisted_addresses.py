"""A link to a blacklisted address (`http://192.0.2.8/login`) is URL_BLACKLISTED, whichever way the address was
listed: `lists add blacklist http://192.0.2.8/`, an `ip` or `cidr` row, or a `domain` row naming it. A `domain` row
naming an address was a domain (judged by URL_BLACKLISTED) until it became an address like the others (68359b0), and
the addresses were only published (rbldnsd): a phishing link to the address then went through."""
import json

import pytest

from engine.lists.csvio import parse_row
from engine.lists.edits import add
from engine.lists.sets import Lists
from engine.textnorm import find_hosts

from .conftest import run_cli


@pytest.mark.parametrize("row", [["domain", "192.0.2.8"], ["domain", "http://192.0.2.8/"], ["ip", "192.0.2.8"],
                                 ["cidr", "192.0.2.0/24"]])
def test_a_link_to_a_listed_address_is_found(row):
    L = Lists()
    add(L, "blacklist", parse_row("blacklist", row))
    assert L.listed_host(find_hosts("Nhan qua tai http://192.0.2.8:8080/login ngay")) == ("192.0.2.8", None,
                                                                                            "192.0.2.8")
    assert L.listed_host(find_hosts("xem http://192.0.3.8/ va http://1xbet.example/")) is None


def test_an_sms_linking_to_an_address_imported_as_a_domain_row_is_dropped_as_blacklisted(tmp_path):
    (tmp_path / "bl.csv").write_text("kind,value\ndomain,192.0.2.8\n")
    run_cli("lists", "import", "blacklist", tmp_path / "bl.csv", "--data-dir", tmp_path / "d", check=True)
    run_cli("lists", "add", "blacklist", "http://198.51.100.9/x", "--data-dir", tmp_path / "d", check=True)
    msgs = tmp_path / "m.jsonl"
    msgs.write_text("".join(json.dumps({"id": i, "kind": "sms", "sender": "0901234567", "recipient": "0912345678",
                                        "text": f"Tai khoan bi khoa, xac minh tai http://{ip}/login",
                                        "time": "2026-11-28T10:00:00+07:00"}) + "\n"
                            for i, ip in enumerate(("192.0.2.8", "198.51.100.9", "203.0.113.5"))))
    out = run_cli("check", "--jsonl", msgs, "--data-dir", tmp_path / "d", check=True).stdout.splitlines()
    hits = [{h["symbol"]: h.get("detail") for h in json.loads(line)["hits"]} for line in out]
    assert [h.get("URL_BLACKLISTED") for h in hits] == ["192.0.2.8 on the listed addresses",
                                                        "198.51.100.9 on the listed addresses", None], hits
