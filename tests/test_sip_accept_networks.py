"""Where the SIP screen takes SIP from at all: sip.toml's accept_networks (sources.py).

Found by review: the screen took SIP from any source address (allow_networks limits only where it sends,
trusted_identity_networks only whose identity headers are believed), so a flood from addresses that are no peers
-- spoofed UDP sources, scanners -- cost a parse each, and spread over 100+ addresses under 64/s each it counted
toward the overload shares (shares.py) and could push a legitimate softswitch over its share. Now a datagram from
outside accept_networks is dropped before it is parsed (by the C pump before any Python object is made for it),
a TCP connection from outside is closed at accept; the default (every address) keeps existing deployments as
they were. Everything runs on 127.0.0.1 / 127.0.0.2 (not a peer) and is stopped at the end. Through a running
screen over UDP and TCP: test_sip_accept_networks_live.py."""
import logging
import random
import socket
from dataclasses import replace

import pytest

from engine.app import build
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.live_settings import apply_sip_settings
from engine.sip_screen.server import SipSettings
from engine.sip_screen.settings import load_sip_settings
from engine.sip_screen.sources import SourceFilter, address_table
from engine.sip_screen.transport import Pump, make_pump

from .conftest import CONFIG
from .sip_helpers import UAC, invite, offline_screen

PEER, STRANGER = "127.0.0.1", "127.0.0.2"
ONLY_PEER = ["127.0.0.1/32"]


@pytest.fixture(scope="module")
def pipe():
    return build(with_model=False, persist=False)


# ------------------------------------------------------------------ the decision, the setting

def test_the_default_takes_every_address_and_the_shipped_config_says_so(pipe):
    assert SipSettings().accept_networks == ["0.0.0.0/0", "::/0"]
    assert load_sip_settings(CONFIG).accept_networks == ["0.0.0.0/0", "::/0"]
    text = (CONFIG / "sip.toml").read_text()
    assert "accept_networks" in text and "Responses are filtered too" in text
    f = SourceFilter(["0.0.0.0/0", "::/0"])
    assert f.every and f.table is None
    assert all(f.accepts(h) for h in ("127.0.0.2", "203.0.113.9", "::1", "not-an-address"))
    assert offline_screen(pipe).accepts("198.51.100.7")


def test_the_table_is_sorted_merged_ranges_per_version():
    assert address_table(["10.0.0.0/24", "10.0.1.0/24", "10.0.0.5/32", "9.0.0.0/8", "::1/128", "::/127"]) == (
        [(0x09000000, 0x0A0001FF)], [(0, 1)])
    assert address_table(["0.0.0.0/0"]) == ([(0, 2 ** 32 - 1)], [])          # no IPv6 peer at all
    assert address_table([]) == ([], [])
    assert address_table(["::/0", "0.0.0.0/1", "128.0.0.0/1"]) is None


def test_only_addresses_inside_the_networks_are_accepted():
    f = SourceFilter(["127.0.0.1/32", "10.0.1.0/24", "fd00::/8"])
    yes = ("127.0.0.1", "10.0.1.0", "10.0.1.255", "::ffff:10.0.1.5", "fd00::1", "fdff:ffff::1%lo", "::ffff:127.0.0.1")
    no = ("127.0.0.2", "10.0.0.255", "10.0.2.0", "::ffff:127.0.0.2", "::1", "fe80::1", "not-an-address", "",
          "010.0.1.1", "10.0.1.1 ", "\0")
    assert [f.accepts(h) for h in yes] == [True] * len(yes)
    assert [f.accepts(h) for h in no] == [False] * len(no)
    assert [f.accepts(h) for h in yes + no] == [True] * len(yes) + [False] * len(no)    # cached alike
    assert not any(SourceFilter([]).accepts(h) for h in yes)                     # nobody


@pytest.mark.parametrize("value", ["10.0.0.0/33", "nope", "", "::/129"])
def test_a_bad_network_is_an_error_at_its_line(tmp_path, value):
    (tmp_path / "sip.toml").write_text(f'[sip]\nlisten = "127.0.0.1:5060"\n\naccept_networks = ["{value}"]\n')
    with pytest.raises(ValueError, match=rf"sip.toml:4:1: \[sip\] accept_networks '{value}' is not an IP network"):
        load_sip_settings(tmp_path)
    (tmp_path / "sip.toml").write_text('[sip]\naccept_networks = "10.0.0.0/8"\n')
    with pytest.raises(ValueError, match=r"sip.toml:2:1: \[sip\] accept_networks must be a list"):
        load_sip_settings(tmp_path)


# ------------------------------------------------------------------ the screen, offline

def test_a_datagram_from_outside_is_dropped_unread_and_never_counts_toward_the_shares(pipe, caplog):
    scr = offline_screen(pipe, accept_networks=ONLY_PEER)
    parsed = []
    real = scr.on_message
    scr.on_message = lambda *a: (parsed.append(a[0]), real(*a))
    with caplog.at_level(logging.WARNING, logger="telfilter.sip"):
        for i in range(300):                      # a flood from 100 spoofed addresses
            scr.on_datagram(invite(call_id=f"f{i}"), (f"10.9.0.{i % 100}", 5060))
        scr.on_datagram(b"garbage", ("::1", 5060, 0, 0))
    assert scr.udp.out == [] and parsed == [] and scr.stats["errors"] == 0
    assert scr.stats["source_refused"] == 301 and scr.stats["screened"] == 0
    assert scr.shares.total == 0 and scr.shares.counts == {}
    said = [r.getMessage() for r in caplog.records if "accept_networks" in r.getMessage()]
    assert len(said) == 1 and "10.9.0.0" in said[0], said                     # at most once a second
    scr.on_datagram(invite(call_id="p1"), UAC)                                # the peer: judged and forwarded
    ((d, _),) = scr.udp.out
    assert parse_datagram(d).method == "INVITE" and scr.shares.total == 1


def test_a_reload_puts_the_networks_in_force(pipe, tmp_path):
    scr = offline_screen(pipe)
    scr.on_datagram(invite(call_id="r1"), (STRANGER, 5080))
    assert len(scr.udp.out) == 1 and scr.stats["source_refused"] == 0
    scr.udp.out.clear()
    (tmp_path / "sip.toml").write_text('[sip]\nlisten = "127.0.0.1:5060"\nnext_hop = "127.0.0.1:5070"\n'
                                       'allow_networks = ["127.0.0.0/8"]\naccept_networks = ["127.0.0.1/32"]\n')
    ans = apply_sip_settings(scr, load_sip_settings(tmp_path), {})
    assert "accept_networks" in ans["changed"]
    scr.on_datagram(invite(call_id="r2"), (STRANGER, 5080))
    assert scr.udp.out == [] and scr.stats["source_refused"] == 1
    apply_sip_settings(scr, replace(scr.s, accept_networks=["127.0.0.0/8"]), {})
    scr.on_datagram(invite(call_id="r3"), (STRANGER, 5080))
    assert len(scr.udp.out) == 1 and scr.stats["source_refused"] == 1


# ------------------------------------------------------------------ the C pump takes the same decisions

def _addresses(rnd):
    out = ["127.0.0.1", "127.0.0.2", "10.0.0.0", "10.255.255.255", "11.0.0.0", "9.255.255.255", "0.0.0.0",
           "255.255.255.255", "::", "::1", "fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::",
           "::ffff:10.1.2.3", "::ffff:127.0.0.2", "fd00::1%eth0", "10.1.2.3%x", "name.example", "", "1.2.3",
           "01.2.3.4", "::ffff:1.2.3.4.5", "1:2:3:4:5:6:7:8:9", "[::1]", " 10.0.0.1", "10.0.0.1\0",
           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::" + "1" * 40]
    for _ in range(3000):
        k = rnd.random()
        if k < 0.5:
            out.append(socket.inet_ntoa(rnd.getrandbits(32).to_bytes(4, "big")))
        elif k < 0.8:
            out.append(socket.inet_ntop(socket.AF_INET6, rnd.getrandbits(128).to_bytes(16, "big")))
        else:
            out.append("::ffff:" + socket.inet_ntoa(rnd.getrandbits(32).to_bytes(4, "big")))
    return out


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_the_pump_decides_as_python_on_every_address(pipe):
    rnd = random.Random(3581)
    addrs = _addresses(rnd)
    many = [f"{socket.inet_ntoa(rnd.getrandbits(32).to_bytes(4, 'big'))}/{rnd.choice((32, 28, 24, 16, 8))}"
            for _ in range(2000)]
    many6 = [f"{socket.inet_ntop(socket.AF_INET6, rnd.getrandbits(128).to_bytes(16, 'big'))}/{rnd.choice((128, 64, 8))}"
             for _ in range(300)]
    # the peers, as the C pump's own addresses would hit them too: some of every address list's own neighbours
    for n in many[:200] + many6[:50]:
        f = SourceFilter([n])
        for r in ([(4, *x) for x in f.table[0]] + [(6, *x) for x in f.table[1]]):
            for v in (r[1] - 1, r[1], r[2], r[2] + 1):
                if r[0] == 4 and 0 <= v < 2 ** 32:
                    addrs.append(socket.inet_ntoa(v.to_bytes(4, "big")))
                elif r[0] == 6 and 0 <= v < 2 ** 128:
                    addrs.append(socket.inet_ntop(socket.AF_INET6, v.to_bytes(16, "big")))
    for nets in (["0.0.0.0/0", "::/0"], ["127.0.0.1/32"], [], ["10.0.0.0/8", "fd00::/8"], ["0.0.0.0/0"], ["::/0"],
                 ["::ffff:0:0/96"], many, many6, many + many6):
        scr = offline_screen(pipe, accept_networks=nets)
        pump = make_pump(scr, -1, scr.udp.sendto)
        f = SourceFilter(nets)
        assert [pump.accepts(a) for a in addrs] == [f.accepts(a) for a in addrs], nets[:3]
        assert sum(f.accepts(a) for a in addrs) > 0 or nets in ([], ["::ffff:0:0/96"])
    for bad in ((["x"], []), ([(2, 1)], []), ([(1, 2), (2, 3)], []), ([], [(0, 2 ** 128)]), ([(0, 2 ** 32)], []), 5):
        with pytest.raises((ValueError, OverflowError, TypeError)):
            Pump(-1, 8, (), b"", "tf", [], {}, None, None, None, None, None, None, {}, bad, None)


def _call(pipe, src):
    """The six datagrams of a call through an accepting screen: (INVITE, 180, 200, ACK, BYE, 200 to BYE), each
    as it reaches the screen, the responses with the screen's Via on top."""
    scr = offline_screen(pipe)
    inv = invite(call_id="pc1", via_port=src[1]).replace(b"127.0.0.1:%d" % src[1], b"%s:%d" % (src[0].encode(), src[1]))
    scr.on_datagram(inv, src)
    ((fwd, _),) = scr.udp.out
    ok = lambda req, st: make_response(parse_datagram(req), st, None, to_tag="uas1").to_bytes()  # noqa: E731
    dialog = inv.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=uas1") \
        .replace(b"INVITE sip:0912345678@127.0.0.1 SIP/2.0", b"%s sip:0912345678@127.0.0.1:5070 SIP/2.0")
    ack, bye = (dialog.replace(b"%s", m).replace(b"CSeq: 1 INVITE", b"CSeq: %s" % cs)
                .replace(b"branch=z9hG4bK-", b"branch=z9hG4bK-" + m) for m, cs in ((b"ACK", b"1 ACK"), (b"BYE", b"2 BYE")))
    scr.udp.out.clear()
    scr.on_datagram(bye, src)
    ((fbye, _),) = scr.udp.out
    return [inv, ok(fwd, 180), ok(fwd, 200), ack, bye, ok(fbye, 200)]


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_the_pump_handles_a_call_from_peers_and_strangers_as_python(tmp_path):
    """Requests and responses alike: the pump (as `serve` runs it, sends captured) sends and counts exactly what
    the Python path does, with a peer's call relayed in C and a stranger's dropped before anything."""
    nets = ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]
    pscr = offline_screen(build(data_dir=tmp_path / "p"), accept_networks=nets)
    scr = offline_screen(build(data_dir=tmp_path / "s"), accept_networks=nets)
    said = []
    pscr.refused_said = said.append
    pump = make_pump(pscr, -1, pscr.udp.sendto)
    handed = []
    real = pscr.on_datagram
    pscr.on_datagram = lambda d, a: (handed.append((d[:12], a)), real(d, a))
    srcs = [UAC, (PEER, 5070), ("10.2.3.4", 5060), ("::ffff:10.2.3.4", 5060, 0, 0), ("fd00::7", 5060, 0, 0),
            (STRANGER, 5080), ("::ffff:127.0.0.2", 5080, 0, 0), ("::1", 5080, 0, 0), ("192.0.2.1", 5060)]
    msgs = _call(build(with_model=False, persist=False), UAC)
    n = 0
    for src in srcs:
        for m in msgs:
            m = m.replace(b"pc1", b"pc%d" % n)
            n += 1
            pscr.udp.out.clear()
            scr.udp.out.clear()
            pump.handle(m, src)
            scr.on_datagram(m, src)
            assert pscr.udp.out == scr.udp.out, (m[:12], src)
            assert pscr.stats == scr.stats, (m[:12], src)
    assert scr.stats["source_refused"] == 4 * len(msgs)
    strangers = srcs[5:]
    assert not [a for _, a in handed if a in strangers]     # a stranger's datagrams never reach Python
    assert [d for d, a in handed if a == UAC] == [msgs[0][:12]]     # a peer's: the INVITE only (the rest in C)
    assert said == [STRANGER]                               # said once (at most once a second)


# ------------------------------------------------------------------ end to end, through the running screen

def _udp(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def _recv(sock, timeout=2.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except (socket.timeout, ConnectionError):
        return None


def test_ctl_reload_sip_puts_accept_networks_in_force_in_serve(tmp_path):
    """Through a real `telfilter serve`: the shipped default serves 127.0.0.2; `ctl reload sip` with
    accept_networks = ["127.0.0.1/32"] refuses it (counted in `ctl stats`, said in the service log), 127.0.0.1
    still served; a bad network is refused at its line and changes nothing."""
    import json
    import shutil

    from engine.smpp_proxy.harness import ProxyHarness

    from .test_control import _stop, ctl
    from .test_ctl_reload import _serve

    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    uas = _udp(PEER)
    text = (cfg / "sip.toml").read_text().replace('next_hop = ""', f'next_hop = "127.0.0.1:{uas.getsockname()[1]}"')
    (cfg / "sip.toml").write_text(text)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, _, sip_port = _serve(tmp_path, cfg, sim.port)
    clis = {src: _udp(src) for src in (PEER, STRANGER)}

    def arrives(src, n):
        cli = clis[src]
        cli.sendto(invite(call_id=f"ctl-{n}", via_port=cli.getsockname()[1]).replace(
            b"SIP/2.0/UDP 127.0.0.1", f"SIP/2.0/UDP {src}".encode()), ("127.0.0.1", sip_port))
        got = _recv(uas, 3.0 if n != "refused" else 0.5)
        return got is not None and f"ctl-{n}".encode() in got
    try:
        assert arrives(STRANGER, 1) and arrives(PEER, 2)
        narrowed = text.replace('accept_networks = ["0.0.0.0/0", "::/0"]', 'accept_networks = ["127.0.0.1/32"]')
        assert narrowed != text
        (cfg / "sip.toml").write_text(narrowed.replace('"127.0.0.1/32"]', '"127.0.0.1/33"]'))
        line = next(i for i, t in enumerate(narrowed.splitlines(), 1) if t.startswith("accept_networks"))
        r = ctl(tmp_path, "reload", "sip")
        assert r.returncode == 1 and f"sip.toml:{line}:1: [sip] accept_networks '127.0.0.1/33'" in r.stderr, r.stderr
        assert arrives(STRANGER, 3)                                           # nothing changed
        (cfg / "sip.toml").write_text(narrowed)
        r = ctl(tmp_path, "reload", "sip")
        assert r.returncode == 0 and json.loads(r.stdout)["sip"]["changed"] == ["accept_networks"], r.stdout + r.stderr
        assert not arrives(STRANGER, "refused") and arrives(PEER, 4)
        r = ctl(tmp_path, "stats")
        assert r.returncode == 0 and json.loads(r.stdout)["sip"]["source_refused"] == 1, r.stdout
    finally:
        for s in (uas, *clis.values()):
            s.close()
        _stop(p)
        sim.stop()
    assert p.returncode == 0
    assert "refused SIP from 127.0.0.2: outside accept_networks" in (tmp_path / "stderr.log").read_text()


def test_a_network_written_ipv4_mapped_holds_the_ipv4_peers_it_names(pipe):
    """Found by a review: a source address is looked up as its IPv4 one when it is IPv4-mapped (a dual-stack
    socket's peer, as the service log names it: "refused SIP from ::ffff:10.0.0.5"), but a network written so
    (::ffff:10.0.0.5, ::ffff:10.0.0.0/104) stayed an IPv6 range: it held no address at all, so a peer listed as the
    log names it was still refused (accept_networks), its identity never believed (trusted_identity_networks), its
    200 no answer (answer_networks). Now such a network is the IPv4 network it is, as the lists' cidr rows are."""
    nets = ["::ffff:10.0.0.0/104", "::ffff:127.0.0.1"]
    assert address_table(nets) == ([(10 << 24, (11 << 24) - 1), (0x7F000001, 0x7F000001)], [])
    scr = offline_screen(pipe, accept_networks=nets, trusted_identity_networks=nets, answer_networks=nets)
    pump = make_pump(scr, -1, scr.udp.sendto)
    f = SourceFilter(nets)
    for host, want in (("10.1.2.3", True), ("::ffff:10.1.2.3", True), ("127.0.0.1", True), ("::ffff:127.0.0.1", True),
                       ("11.0.0.1", False), ("127.0.0.2", False), ("::1", False)):
        assert (f.accepts(host), pump.accepts(host), scr.accepts(host), scr._identity_trusted(host),
                scr._answers_from(host)) == (want,) * 5, host
