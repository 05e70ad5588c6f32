"""`[::]` listens on both address families (engine/listen.py): an IPv4 and an IPv6 client on the same `[::]` port, for
the SMPP plain and TLS listeners, SIP over TCP and /metrics, on loopback. Before, asyncio's create_server set
IPV6_V6ONLY: an IPv4 ESME got 'connection refused' (while the SIP UDP socket on `[::]` took IPv4). An IPv4 peer is
named by its IPv4 address (not ::ffff:127.0.0.1), so an account's allowed_networks 127.0.0.0/8 lets it bind and a
SIP TCP connection is logged and keyed by the address an operator wrote."""
import asyncio
import dataclasses
import logging
import shutil
import socket

import pytest
import smpplib.client

from engine.app import build
from engine.listen import listen_args, peer_of, unmapped
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.server import SmppProxy

from .conftest import CONFIG
from .test_sip_ipv6 import _answer, _read_sip, _request
from .test_smpp_tls import client_context, pki, submit  # noqa: F401 (pki: the fixture)

pytestmark = pytest.mark.skipif(not (socket.has_ipv6 and socket.has_dualstack_ipv6()), reason="no dual-stack IPv6")


class Client6(smpplib.client.Client):
    """smpplib over IPv6 (it makes AF_INET sockets only)."""

    def _create_socket(self):
        raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        raw.settimeout(self.timeout)
        return raw if self._ssl_context is None else self._ssl_context.wrap_socket(raw)


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path / "data")


def dual_proxy(pipe, **settings):
    """The proxy on `[::]:0` (plain and/or TLS, as `settings` say); esme4 may bind from 127.0.0.0/8 only, esme6 from
    ::1 only."""
    h = ProxyHarness(pipe, with_proxy=False).start()
    s = SmppSettings(smsc=[f"127.0.0.1:{h.sim.port}"], **settings)
    for arg, nets in (("esme4:secret", ("127.0.0.0/8",)), ("esme6:secret", ("::1/128",))):
        acc = dataclasses.replace(account_from_arg(arg), allowed_networks=nets)
        s.accounts[acc.system_id] = acc
    h.proxy = SmppProxy(pipe, s, h.vlog)
    try:
        h.call(h.proxy.start())
        assert h.call(h.proxy.wait_upstream(10))
    except BaseException:
        h.stop()
        raise
    return h


def bind_both(h, port, caplog, ssl_context=None):
    """An IPv4 ESME and an IPv6 one bind on `port` and each has a submit forwarded; their sessions' peers."""
    with caplog.at_level(logging.INFO, logger="telfilter.smpp"):
        clients = []
        for cls, host, sid in ((smpplib.client.Client, "127.0.0.1", "esme4"), (Client6, "::1", "esme6")):
            c = cls(host, port, timeout=5, ssl_context=ssl_context)
            c.connect()                 # IPv4 before: smpplib.exceptions.ConnectionError 'Connection refused'
            c.bind_transceiver(system_id=sid, password="secret")
            assert submit(c).status == 0
            clients.append(c)
        peers = {s.account.system_id: s.peer[0] for s in h.proxy.sessions}
        for c in clients:
            c.disconnect()
    assert len(h.sim.submits()) == 2
    assert "ESME esme4 bound as transceiver from 127.0.0.1" in caplog.text, caplog.text
    return peers


def test_smpp_on_dual_stack_takes_an_ipv4_and_an_ipv6_esme_each_by_its_own_address(pipe, caplog):
    h = dual_proxy(pipe, listen="[::]:0")
    try:
        assert h.proxy.server.sockets[0].getsockname()[0] == "::"
        assert bind_both(h, h.proxy.port, caplog) == {"esme4": "127.0.0.1", "esme6": "::1"}
    finally:
        h.stop()


def test_smpp_tls_on_dual_stack_takes_an_ipv4_and_an_ipv6_esme_each_by_its_own_address(pipe, pki, caplog):
    h = dual_proxy(pipe, listen="", tls_listen="[::]:0", tls_cert=str(pki / "server.pem"),
                   tls_key=str(pki / "server.key"))
    try:
        assert h.proxy.server is None
        assert bind_both(h, h.proxy.tls_port, caplog, client_context(pki, cert=False)) == \
            {"esme4": "127.0.0.1", "esme6": "::1"}
        assert h.proxy.stats["tls_handshake_failures"] == 0
    finally:
        h.stop()


def test_sip_tcp_on_dual_stack_gets_an_ipv4_and_an_ipv6_call_through_and_each_answer_back(tmp_path):
    """The next hop is IPv4 over TCP; the callers come over IPv4 and IPv6 to the same `[::]` port, and each 200 comes
    back on its connection (our Via's `;i=`). The IPv4 caller's connection is named 127.0.0.1, not ::ffff:127.0.0.1."""
    uas_lst = socket.create_server(("127.0.0.1", 0))
    uas_lst.settimeout(5)
    uas_port = uas_lst.getsockname()[1]
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    h = SipHarness(build(cfg, tmp_path / "data"), SipSettings(
        listen="[::]:0", next_hop=f"127.0.0.1:{uas_port};transport=tcp",
        allow_networks=["127.0.0.0/8", "::1/128"])).start()
    conns, uas = [], None
    try:
        for family, host, via_host in ((socket.AF_INET, "127.0.0.1", "127.0.0.1"), (socket.AF_INET6, "::1", "[::1]")):
            uac = socket.socket(family, socket.SOCK_STREAM)
            uac.settimeout(5)
            conns.append(uac)
            uac.connect((host, h.port))         # IPv4 before: ConnectionRefusedError
            call_id = f"dual-{family.name}"
            uac.sendall(_request("INVITE", uas_port, call_id,
                                 f"SIP/2.0/TCP {via_host}:{uac.getsockname()[1]};branch=z9hG4bK-{family.name};rport"))
            if uas is None:                     # the second call takes the screen's connection to the UAS again
                uas, _ = uas_lst.accept()
                uas.settimeout(5)
                conns.append(uas)
            data = _read_sip(uas)
            assert f"Call-ID: {call_id}".encode() in data
            uas.sendall(_answer(data))
            assert _read_sip(uac).startswith(b"SIP/2.0 200 OK")
        peers = sorted(c.peer[0] for c in h.screen.tcp_conns.values() if c.key is None)
        assert peers == ["127.0.0.1", "::1"]
        assert h.screen.stats["not_permitted"] == 0
    finally:
        for c in conns:
            c.close()
        uas_lst.close()
        h.stop()


def test_metrics_on_dual_stack_answers_ipv4_and_ipv6(tmp_path):
    from engine.metrics import Metrics
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)

    async def main():
        m = Metrics(pipe)
        await m.start("[::]:0")
        answers = []
        try:
            for host in ("127.0.0.1", "::1"):
                r, w = await asyncio.open_connection(host, m.port)     # IPv4 before: ConnectionRefusedError
                w.write(b"GET /metrics HTTP/1.0\r\n\r\n")
                answers.append(await asyncio.wait_for(r.read(), 5))
                w.close()
        finally:
            await m.stop()
        return answers
    for a in asyncio.run(main()):
        assert a.startswith(b"HTTP/1.1 200 ") and b"telfilter_" in a


def test_only_the_any_address_is_made_dual_stack():
    """A specific address (or 0.0.0.0) is listened on by asyncio as before; `::` gets a socket of our own whose
    IPV6_V6ONLY is off."""
    for host in ("::1", "0.0.0.0", "127.0.0.1"):
        assert listen_args(host, 0, True) == {"host": host, "port": 0, "reuse_port": True}
    assert listen_args("127.0.0.1", 0) == {"host": "127.0.0.1", "port": 0, "reuse_port": None}
    sock = listen_args("::", 0)["sock"]
    try:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    finally:
        sock.close()


def test_a_mapped_peer_is_named_by_its_ipv4_address():
    assert unmapped("::ffff:10.0.0.5") == "10.0.0.5"
    for host in ("10.0.0.5", "::1", "2001:db8::ffff:1", "?"):
        assert unmapped(host) == host
    assert peer_of(("::ffff:127.0.0.1", 2775, 0, 0)) == ("127.0.0.1", 2775)
    assert peer_of(("::1", 2775, 0, 0)) == ("::1", 2775, 0, 0)
    assert peer_of(None) == ("?", 0)
