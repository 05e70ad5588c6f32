"""A link's host read as a browser reads it (the WHATWG URL Standard's host parser, engine/urlhost.py): the IPv4
forms the standard's IPv4 parser accepts are the address, a host ending in a number that is none is no host, a
name is a name, an IPv6 literal is its address (an IPv4-mapped one its IPv4 address)."""
import ipaddress

import pytest

from engine.urlhost import TOO_LARGE, ends_in_number, host_address, ipv4_number, link_host, parse_ipv4

A = ipaddress.IPv4Address


@pytest.mark.parametrize("host", ["192.0.2.8", "192.0.2.8.", "3221225992", "0xc0000208", "0XC0000208",
                                  "0300.0.02.010", "0300.0000.0002.0010", "192.0.520", "192.520", "0xc0.0.0x2.8",
                                  "0xc0.0.0x208", "0x00000000000000000000c0000208", "030000001010"])
def test_every_ipv4_form_a_browser_opens_is_the_dotted_quad(host):
    assert host_address(host) == A("192.0.2.8")


def test_the_last_part_fills_the_bytes_the_others_leave():
    assert host_address("192.11010056") == A("192.168.0.8")       # 11010056 = 0xA80008
    assert host_address("0") == A("0.0.0.0") and host_address("0x") == A("0.0.0.0")
    assert host_address("4294967295") == A("255.255.255.255")


@pytest.mark.parametrize("host", ["1.2.3.999", "4294967296", "256.1.1.1", "1.2.3.4.5", "1..2.3", "09.1.1.1",
                                  "0x1g.1", "example.0x10", "phish.example.1", "1.2.3.0x100", "9" * 5000])
def test_a_host_ending_in_a_number_that_is_no_address_is_no_host(host):
    assert ends_in_number(host)
    with pytest.raises(ValueError):
        host_address(host)


@pytest.mark.parametrize("host", ["phish.example", "1xbet.example", "example.com1", "box0x.example", "a.0xz",
                                  "192.0.2.8x", "vn"])
def test_a_name_is_not_an_address(host):
    assert host_address(host) is None


def test_ipv6_literals_in_brackets():
    assert host_address("[2001:db8::9]") == ipaddress.IPv6Address("2001:db8::9")
    assert host_address("[::ffff:192.0.2.8]") == A("192.0.2.8")
    for bad in ("[2001:db8::9", "[fe80::1%eth0]", "[1:2:3:4:5:6:7:8:9]"):
        with pytest.raises(ValueError):
            host_address(bad)


def test_a_part_of_any_length_costs_no_more_than_its_check():
    assert ipv4_number("1" * 50000) == TOO_LARGE and ipv4_number("0x" + "f" * 50000) == TOO_LARGE
    assert ipv4_number("0" * 50000 + "10") == 8                 # octal, leading zeros
    assert parse_ipv4("1." * 30000 + "1") is None              # more than four parts, split no further


def test_a_link_host_ends_at_a_path_query_fragment_or_backslash():
    assert [link_host(u) for u in ("http://1.2.3.4?x=1", "http://u:p@1.2.3.4:80#f", "HTTPS://Phish.Example\\x",
                                   "http://[2001:DB8::9]:8443/x", "http://2001:db8::9/")] == [
        "1.2.3.4", "1.2.3.4", "phish.example", "[2001:db8::9]", "[2001:db8::9]"]
