"""A link to a blacklisted address (`http://192.0.2.8/login`) is URL_BLACKLISTED, whichever way the address was
listed: `lists add blacklist http://192.0.2.8/`, an `ip` or `cidr` row, or a `domain` row naming it. A `domain` row
naming an address was a domain (judged by URL_BLACKLISTED) until it became an address like the others (68359b0), and
the addresses were only published (rbldnsd): a phishing link to the address then went through."""
import json

import pytest

from engine.lists.csvio import parse_row
from engine.lists.edits import add, record
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


@pytest.mark.parametrize("link", ["http://3221225992/", "http://0xC0000208/login", "http://0300.0.02.010/",
                                  "http://192.0.520/", "http://192.520:8080/", "https://0xc0.0.0x2.8/x",
                                  "http://u@030000001010?a=1", "https://[::ffff:192.0.2.8]/", "https://[::FFFF:C000:208]/"])
def test_a_link_to_a_listed_address_in_another_form_a_browser_opens_is_found(link):
    L = Lists()
    add(L, "blacklist", parse_row("blacklist", ["ip", "192.0.2.8"]))
    found = L.listed_host(find_hosts(f"Xac minh tai {link} ngay"))
    assert found is not None and found[1:] == (None, "192.0.2.8")


def test_a_link_to_a_listed_ipv6_address_is_found():
    L = Lists()
    add(L, "blacklist", parse_row("blacklist", ["cidr", "2001:db8::/32"]))
    assert L.listed_host(find_hosts("xem http://[2001:DB8::9]:8443/x ngay")) == ("[2001:db8::9]", None, "2001:db8::9")
    assert L.listed_host(find_hosts("xem http://[2001:db9::9]/x ngay")) is None


def test_a_listed_domain_never_matches_a_host_that_is_an_address_or_no_host():
    L = Lists()
    L.bl_domains.update({"010", "02.010", "520", "999"})        # (what no import stores, held here to be sure)
    assert L.listed_host(find_hosts("http://0300.0.02.010/ http://192.0.520/ http://1.2.3.999/")) is None


@pytest.mark.parametrize("value", ["http://1.2.3.4?x=1", "http://1.2.3.4#top", "http://16909060/",
                                   "http://0x01020304?x", "http://[::ffff:1.2.3.4]/"])
def test_lists_add_of_a_link_to_an_address_in_any_form_lists_the_dotted_quad(value):
    assert record("blacklist", value, None, None) == ("ip", (4, 0x01020304, 0x01020304))
    assert parse_row("blacklist", ["domain", value]) == ("ip", (4, 0x01020304, 0x01020304))
    assert parse_row("blacklist", ["ip", value]) == ("ip", (4, 0x01020304, 0x01020304))


def test_a_bare_number_is_still_a_number_and_a_domain_link_with_a_query_its_domain():
    assert record("blacklist", "3221225992", None, None) == ("number", 3221225992)
    assert parse_row("blacklist", ["domain", "https://phish.example?x=1"]) == ("domain", "phish.example")


def test_the_evidence_names_the_address_and_the_host_as_written(tmp_path):
    run_cli("lists", "add", "blacklist", "http://0xC0000208?x=1", "--data-dir", tmp_path / "d", check=True)
    msgs = tmp_path / "m.jsonl"
    msgs.write_text("".join(json.dumps({"id": i, "kind": "sms", "sender": "0901234567", "recipient": "0912345678",
                                        "text": f"Tai khoan bi khoa, xac minh tai {link}",
                                        "time": "2026-11-28T10:00:00+07:00"}) + "\n"
                            for i, link in enumerate(("http://3221225992/login", "http://192.0.2.8/",
                                                      "https://[::ffff:192.0.2.8]/"))))
    out = run_cli("check", "--jsonl", msgs, "--data-dir", tmp_path / "d", check=True).stdout.splitlines()
    hits = [{h["symbol"]: h.get("detail") for h in json.loads(line)["hits"]} for line in out]
    assert [h.get("URL_BLACKLISTED") for h in hits] == [
        "192.0.2.8 on the listed addresses (link host 3221225992)", "192.0.2.8 on the listed addresses",
        "192.0.2.8 on the listed addresses (link host [::ffff:192.0.2.8])"], hits


def test_a_percent_encoded_link_host_is_read_decoded_as_a_browser_reads_it():
    L = Lists()
    add(L, "blacklist", parse_row("blacklist", ["ip", "192.0.2.8"]))
    add(L, "blacklist", parse_row("blacklist", ["domain", "phish.example"]))
    assert L.listed_host(find_hosts("xem http://%31%39%32.0.2.8/x"))[1:] == (None, "192.0.2.8")
    assert L.listed_host(find_hosts("xem https://login.ph%69sh.%65xample/x"))[2] == "phish.example"
    assert record("blacklist", "http://%31%39%32.0.2.8/", None, None) == ("ip", (4, 0xC0000208, 0xC0000208))


@pytest.mark.parametrize("link", ["http://%EF%BC%91%EF%BC%99%EF%BC%92.0.2.8/",      # percent-encoded full-width 192
                                  "http://192%E3%80%820.2.8/",                      # an encoded ideographic full stop
                                  "http://192.0.2.%C2%AD8/"])                       # an encoded soft hyphen
def test_a_percent_encoded_host_is_mapped_as_a_browser_maps_it_after_decoding(link):
    # the host parser percent-decodes, then maps (UTS #46: full-width digits, 。, ignorables) and only then asks
    # whether it ends in a number: each of these opens 192.0.2.8 in a browser (was skipped as "no host", or a name)
    L = Lists()
    add(L, "blacklist", parse_row("blacklist", ["ip", "192.0.2.8"]))
    found = L.listed_host(find_hosts(f"Xac minh tai {link} ngay"))
    assert found is not None and found[1:] == (None, "192.0.2.8")
    assert record("blacklist", link, None, None) == ("ip", (4, 0xC0000208, 0xC0000208))


@pytest.mark.parametrize("link", ["http://a@b@192.0.2.8/x", "http://user:p@ss@192.0.2.8:80/", "https://x@y.example@phish.example/",
                                  "http://a@b@phish.example"])
def test_a_link_whose_userinfo_holds_an_at_sign_is_read_at_its_last_as_a_browser_reads_it(link):
    # the host is what follows the authority's last "@" (WHATWG authority state; `lists add` read it so): the host
    # was read from the first, "b@192.0.2.8", "y.example@phish.example", and neither listed entry was ever found
    L = Lists()
    add(L, "blacklist", parse_row("blacklist", ["ip", "192.0.2.8"]))
    add(L, "blacklist", parse_row("blacklist", ["domain", "phish.example"]))
    found = L.listed_host(find_hosts(f"Xac minh tai {link} ngay"))
    assert found is not None and found[2] in ("192.0.2.8", "phish.example")
