"""sip.toml `remedy_url`, the Call-Info of a 603/608 rejection (RFC 8688 §5). Found at the care desk: the shipped
value is a placeholder (`https://telfilter.example/remedy`) and a carrier without a remedy page could not leave the
header out: `remedy_url = ""` sent `Call-Info: <>;purpose=info`, no URI at all (RFC 3261 §20.9 wants an absolute
one), and a value with a line break in it was sent as a header of its own in every rejection."""
import socket

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.settings import load_sip_settings

from .test_sip import INVITE, recv


def _rejection(tmp_path, remedy_url):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    s = SipSettings(listen="127.0.0.1:0", next_hop="127.0.0.1:9", allow_networks=["127.0.0.0/8"],
                    remedy_url=remedy_url)
    with SipHarness(build(data_dir=d), s) as h, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cli:
        cli.bind(("127.0.0.1", 0))
        cli.sendto(INVITE.format(callee="0912345678", caller="0987000666", cport=cli.getsockname()[1],
                                 branch="rm1").encode(), ("127.0.0.1", h.port))
        return recv(cli)


def test_an_empty_remedy_url_leaves_call_info_out(tmp_path):
    raw = _rejection(tmp_path, "")
    r = parse_datagram(raw)
    assert r.status == 608 and "SENDER_BLACKLISTED" in r.get("reason")
    assert r.get("call-info") is None and b"<>" not in raw


def test_a_remedy_url_is_sent_as_given(tmp_path):
    r = parse_datagram(_rejection(tmp_path, "https://care.carrier.vn/khieu-nai"))
    assert r.get("call-info") == "<https://care.carrier.vn/khieu-nai>;purpose=info"


@pytest.mark.parametrize("value", ["https://care.example/x\r\nX-Injected: 1", "care page", "https://a/<b>",
                                   "/remedy", "care.example:8080/x", "urn:x-care:1", "javascript:alert(1)"])
def test_a_remedy_url_that_is_no_absolute_uri_is_a_config_error_at_its_line(tmp_path, value):
    (tmp_path / "sip.toml").write_text('[sip]\n\nremedy_url = "%s"\n' % value.replace("\r", "\\r").replace("\n", "\\n"))
    with pytest.raises(ValueError, match=r"sip\.toml:3:1: \[sip\] remedy_url must be an absolute URI"):
        load_sip_settings(tmp_path)
    (tmp_path / "sip.toml").write_text('[sip]\nremedy_url = ""\n')
    assert load_sip_settings(tmp_path).remedy_url == ""


@pytest.mark.parametrize("value", ["https://care.example/x", "HTTP://care.example:8080/x", "sip:care@carrier.example",
                                   "sips:care@carrier.example", "tel:+84-24-1234-5678", "mailto:care@carrier.example"])
def test_a_remedy_url_of_a_scheme_a_caller_can_use_is_taken(tmp_path, value):
    (tmp_path / "sip.toml").write_text('[sip]\nremedy_url = "%s"\n' % value)
    assert load_sip_settings(tmp_path).remedy_url == value
