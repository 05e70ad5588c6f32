"""Whose identity headers the screen believes (RFC 3325 §5, Spec(T)): sip.toml's trusted_identity_networks.

Found by review: the screen read P-Asserted-Identity, Remote-Party-ID and P-Preferred-Identity from any peer, so a
caller sending straight to it could hide a blacklisted From behind a clean number in P-Asserted-Identity, or put an
advertiser's registered number there to borrow its rights. Now those headers are read only when the INVITE's
previous hop (its source address; over TCP the connection's peer) is inside trusted_identity_networks; from any
other peer the caller is its From. The default (every address) keeps the verdicts of existing deployments.
Everything runs on 127.0.0.1 / 127.0.0.2 (an untrusted sender) and is stopped at the end."""
import socket
from pathlib import Path

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.live_settings import apply_sip_settings
from engine.sip_screen.identity import _caller
from engine.sip_screen.server import SipSettings
from engine.sip_screen.settings import load_sip_settings

from .conftest import CONFIG
from .sip_helpers import invite, offline_screen

BAD = "0987000666"                                  # blacklisted
CLEAN = "0901234567"
PAI = "P-Asserted-Identity: <tel:" + CLEAN + ">"
TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"


def _pipe(d: Path):
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    return build(data_dir=d, with_model=False, persist=False)


# ------------------------------------------------------------------ the trust decision

def test_the_default_trusts_every_peer_and_the_shipped_config_says_so(tmp_path):
    assert SipSettings().trusted_identity_networks == ["0.0.0.0/0", "::/0"]
    assert load_sip_settings(CONFIG).trusted_identity_networks == ["0.0.0.0/0", "::/0"]
    assert "trusted_identity_networks" in (CONFIG / "sip.toml").read_text()
    scr = offline_screen(_pipe(tmp_path))
    assert all(scr._identity_trusted(h) for h in ("127.0.0.2", "203.0.113.9", "::1", "::ffff:10.0.0.1"))


def test_only_addresses_inside_the_networks_are_trusted(tmp_path):
    scr = offline_screen(_pipe(tmp_path), trusted_identity_networks=["127.0.0.1/32", "10.0.1.0/24", "fd00::/8"])
    yes = ("127.0.0.1", "10.0.1.200", "::ffff:10.0.1.5", "fd00::1", "fd00::1%lo")
    no = ("127.0.0.2", "10.0.2.1", "::ffff:127.0.0.2", "::1", "fe80::1", "not-an-address", "")
    assert [scr._identity_trusted(h) for h in yes] == [True] * len(yes)
    assert [scr._identity_trusted(h) for h in no] == [False] * len(no)
    assert [scr._identity_trusted(h) for h in yes + no] == [True] * len(yes) + [False] * len(no)    # cached alike
    scr.s.trusted_identity_networks = []                                      # nobody: From only, from everyone
    assert not scr._identity_trusted("127.0.0.1")
    scr.s.trusted_identity_networks = ["0.0.0.0/0"]                           # every IPv4 peer, no IPv6 one
    assert scr._identity_trusted("127.0.0.2") and not scr._identity_trusted("::1")


def test_an_untrusted_peer_is_judged_by_its_from_only():
    msg = parse_datagram(invite(caller=BAD, extra=[PAI]))
    assert _caller(msg, msg.first_values(), trusted=False) == (BAD, BAD)
    assert _caller(msg, msg.first_values())[0] == CLEAN                      # trusted: read as before
    # Remote-Party-ID and P-Preferred-Identity are read (trusted) only behind a From that is no number: an
    # untrusted peer can no longer name, say, an advertiser's registered number there
    for extra in (PAI, "Remote-Party-ID: <sip:" + CLEAN + "@127.0.0.1>;party=calling",
                  "P-Preferred-Identity: <sip:" + CLEAN + "@127.0.0.1>"):
        anon = parse_datagram(invite(caller="anonymous", extra=[extra]))
        assert _caller(anon, anon.first_values(), trusted=False) == ("anonymous", "anonymous")
        assert _caller(anon, anon.first_values())[0] == CLEAN


@pytest.mark.parametrize("value", ["10.0.0.0/33", "nope", "", "::/129"])
def test_a_bad_network_is_an_error_at_its_line(tmp_path, value):
    (tmp_path / "sip.toml").write_text(f'[sip]\nlisten = "127.0.0.1:5060"\n\ntrusted_identity_networks = ["{value}"]\n')
    with pytest.raises(ValueError, match=rf"sip.toml:4:1: \[sip\] trusted_identity_networks '{value}' "
                                         r"is not an IP network"):
        load_sip_settings(tmp_path)
    (tmp_path / "sip.toml").write_text('[sip]\ntrusted_identity_networks = "10.0.0.0/8"\n')
    with pytest.raises(ValueError, match=r"sip.toml:2:1: \[sip\] trusted_identity_networks must be a list"):
        load_sip_settings(tmp_path)


def test_a_reload_puts_the_networks_in_force(tmp_path):
    scr = offline_screen(_pipe(tmp_path / "d"))
    scr.on_datagram(invite(caller=BAD, call_id="rl1", extra=[PAI]), (UNTRUSTED, 5080))
    (m, _), = [(parse_datagram(d), a) for d, a in scr.udp.out]
    assert m.method == "INVITE" and scr.stats["identity_untrusted"] == 0    # default: believed from anyone
    scr.udp.out.clear()
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "sip.toml").write_text('[sip]\nlisten = "127.0.0.1:5060"\nnext_hop = "127.0.0.1:5070"\n'
                                  'allow_networks = ["127.0.0.0/8"]\ntrusted_identity_networks = ["127.0.0.1/32"]\n')
    ans = apply_sip_settings(scr, load_sip_settings(cfg), {})
    assert "trusted_identity_networks" in ans["changed"]
    scr.on_datagram(invite(caller=BAD, call_id="rl2", extra=[PAI]), (UNTRUSTED, 5080))
    (m, _), = [(parse_datagram(d), a) for d, a in scr.udp.out]
    assert m.status == 608 and "SENDER_BLACKLISTED" in m.get("reason")
    assert scr.stats["identity_untrusted"] == 1


# ------------------------------------------------------------------ end to end, through the running screen

@pytest.fixture
def running(tmp_path):
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}",
                    allow_networks=["127.0.0.0/8"], trusted_identity_networks=[f"{TRUSTED}/32"])
    h = SipHarness(_pipe(tmp_path), s).start()
    try:
        yield h, uas
    finally:
        h.stop()
        uas.close()


def _recv(sock, timeout=2.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except socket.timeout:
        return None


def test_a_blacklisted_from_behind_a_clean_asserted_identity_over_udp(running):
    """From 127.0.0.2 (untrusted) the blacklisted From is judged and refused; from 127.0.0.1 (trusted) the call is
    judged by P-Asserted-Identity, as before."""
    h, uas = running
    extra = PAI
    for n, (src, want) in enumerate(((UNTRUSTED, 608), (TRUSTED, "INVITE"))):
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.bind((src, 0))
        try:
            cli.sendto(invite(caller=BAD, call_id=f"u{n}-{extra[:5]}@{src}", via_port=cli.getsockname()[1],
                              extra=[extra]), ("127.0.0.1", h.port))
            if want == 608:
                m = parse_datagram(_recv(cli))
                assert m.status == 608 and "SENDER_BLACKLISTED" in m.get("reason"), (m.status, m.get("reason"))
                assert _recv(uas, 0.3) is None
            else:
                m = parse_datagram(_recv(uas))
                assert m.method == "INVITE" and m.get("call-id").startswith(f"u{n}-")
                assert _recv(cli, 0.3) is None
        finally:
            cli.close()
    assert h.screen.stats["identity_untrusted"] == 1 and h.screen.stats["screened"] == 2


def test_over_tcp_the_connection_peer_decides(running):
    h, uas = running
    for n, (src, want) in enumerate(((UNTRUSTED, 608), (TRUSTED, "INVITE"))):
        t = socket.create_connection(("127.0.0.1", h.port), timeout=3, source_address=(src, 0))
        try:
            inv = invite(caller=BAD, call_id=f"t{n}@{src}", via_port=t.getsockname()[1], extra=[PAI])
            t.sendall(inv.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
            if want == 608:
                p = StreamParser()
                p.feed(_recv(t))
                m = p.next()
                assert m.status == 608 and "SENDER_BLACKLISTED" in m.get("reason")
                assert _recv(uas, 0.3) is None
            else:
                m = parse_datagram(_recv(uas))
                assert m.method == "INVITE" and m.get("call-id") == f"t{n}@{src}"
        finally:
            t.close()
