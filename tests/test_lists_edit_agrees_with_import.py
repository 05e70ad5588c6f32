"""`lists add` (and `ctl lists add`, the same record()) and a CSV import read a value alike, and an error names
what to give: `lists add senders X --owner O` without --category said "category must be QC or CSKH, got ''"
(a CSV cell's wording, for an option the operator never gave); a blacklist row `ip,http://192.0.2.7/` was refused
while `lists add blacklist http://192.0.2.7/` listed the address."""
import pytest

from engine.lists.csvio import parse_row
from engine.lists.edits import record

from .conftest import run_cli


def test_a_sender_without_category_asks_for_the_option(tmp_path):
    r = run_cli("lists", "add", "senders", "SHOPX", "--owner", "Shop", "--data-dir", str(tmp_path))
    assert r.returncode != 0
    assert "--category (QC or CSKH)" in r.stderr and "got ''" not in r.stderr
    with pytest.raises(ValueError, match="category must be QC or CSKH, got 'XX'"):     # a wrong one: as it was
        record("senders", "SHOPX", "SV", ["Shop", "XX", "", "", ""])


@pytest.mark.parametrize("url", ["http://192.0.2.7/", "https://user@192.0.2.7:8080/x", "http://[2001:db8::7]/p"])
def test_an_ip_row_given_as_a_link_lists_its_address(url):
    assert parse_row("blacklist", ["ip", url]) == record("blacklist", url, "SV", None)
    assert parse_row("blacklist", ["ip", url])[0] == "ip"


def test_an_ip_row_with_a_link_to_a_name_is_still_refused():
    with pytest.raises(ValueError, match="not an IP address"):
        parse_row("blacklist", ["ip", "http://example.vn/"])


def test_a_domain_row_naming_an_address_lists_the_address():
    """`domain,http://192.0.2.8/` (or `domain,192.0.2.8`) was stored as the domain "192.0.2.8", a name no DNS
    has (exported so, into an rbldnsd domain zone too), where `lists add blacklist` lists the address."""
    for v in ("http://192.0.2.8/", "192.0.2.8"):
        assert parse_row("blacklist", ["domain", v]) == record("blacklist", v, "SV", None)
    assert parse_row("blacklist", ["domain", "http://Vi-Du.vn/x"]) == ("domain", "vi-du.vn")


def test_an_address_stored_as_a_domain_before_is_removable():
    from engine.lists.edits import remove
    from engine.lists.sets import Lists
    L = Lists()
    L.bl_domains.add("192.0.2.8")           # what an import of `domain,192.0.2.8` stored
    assert remove(L, "blacklist", "http://192.0.2.8/", "SV", None) and L.bl_domains == set()
    assert not remove(L, "blacklist", "192.0.2.8", "SV", None)


def test_an_address_written_with_a_trailing_dot_is_the_address():
    """`lists add blacklist 192.0.2.8.` (an address as a log or a resolver writes it, and as a browser reads a link
    to it) blacklisted the number 192028, answered "added"; an import's `domain,192.0.2.8.` listed a domain."""
    for v in ("192.0.2.8.", "http://192.0.2.8./login"):
        assert record("blacklist", v, "SV", None) == ("ip", (4, 3221225992, 3221225992))
        assert parse_row("blacklist", ["domain", v]) == parse_row("blacklist", ["ip", v]) == record("blacklist", v,
                                                                                                   "SV", None)
    assert record("blacklist", "0912.345.678.", "SV", None)[0] == "number"   # a number written with dots still is one
