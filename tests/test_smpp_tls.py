"""SMPP over TLS (engine/smpp_proxy/tls.py): smpplib binds to the proxy's TLS listener (mutual TLS), a client
without a certificate and one that never handshakes are dropped, an SMSC link over TLS carries a submit_sm, serve
takes binds over TLS and a reload a renewed certificate. A throwaway CA and certificates in tmp_path. The config
check's tests: test_smpp_tls_config.py; the handshake rate: _rate.py; certificates tied to accounts: _accounts.py."""
import asyncio
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import time

import pytest
import smpplib.client
import smpplib.consts
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.app import build
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.server import SmppProxy
from engine.smpp_proxy.simulator import SmscSimulator, _SimSession

from .conftest import CONFIG, ROOT
from .test_smpp_proxy import wait

HAM = "Hi Lan, the meeting moved to 3pm tomorrow. See you there"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject, key, issuer, issuer_key, *, ca=False, days=(-1, 30), san=True):
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now + dt.timedelta(days=days[0])).not_valid_after(now + dt.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(d, name, cert=None, key=None):
    if cert is not None:
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        (d / f"{name}.key").chmod(0o600)     # as a private key is kept (a key others can read is a warning)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem, server.pem/.key (localhost, 127.0.0.1), client.pem/.key, other_ca.pem, expired.pem/.key."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test CA", ca_key, "test CA", ca_key, ca=True, san=False)
    _write(d, "ca", ca, ca_key)
    for name, days in (("server", (-1, 30)), ("client", (-1, 30)), ("expired", (-30, -1))):
        k = ec.generate_private_key(ec.SECP256R1())
        _write(d, name, _issue(name, k, "test CA", ca_key, days=days), k)
    other_key = ec.generate_private_key(ec.SECP256R1())
    _write(d, "other_ca", _issue("other CA", other_key, "other CA", other_key, ca=True, san=False))
    return d


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path / "data")


def tls_harness(pipe, pki, client_ca=True, **kw):
    s = SmppSettings(tls_listen="127.0.0.1:0", tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"),
                     tls_client_ca=str(pki / "ca.pem") if client_ca else "", **kw)
    return ProxyHarness(pipe, accounts=("esme1:secret",), settings=s).start()


def client_context(pki, cert=True):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False      # smpplib wraps its socket without a server_hostname (the chain is still verified)
    if cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def submit(c):
    c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr="84901234567", dest_addr_ton=1, dest_addr_npi=1,
                   destination_addr="84912345678", short_message=HAM.encode())
    return c.read_pdu()




def test_smpplib_binds_over_mutual_tls_and_a_submit_reaches_the_smsc(pipe, pki):
    h = tls_harness(pipe, pki)
    try:
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=client_context(pki))
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        resp = submit(c)
        assert resp.command == "submit_sm_resp" and resp.status == 0 and resp.message_id
        subs = h.sim.submits()
        assert len(subs) == 1 and subs[0].short_message == HAM.encode()
        assert h.proxy.port != h.proxy.tls_port            # the plain listener is still there beside it
        peer = next(iter(h.proxy.sessions)).transport.get_extra_info("ssl_object")
        assert peer.version() in ("TLSv1.2", "TLSv1.3") and peer.getpeercert()["subject"][0][0][1] == "client"
        c.unbind()
        c.disconnect()
        assert h.proxy.stats["tls_handshake_failures"] == 0
    finally:
        h.stop()


def test_a_client_without_a_certificate_is_refused_when_client_ca_is_set(pipe, pki):
    h = tls_harness(pipe, pki)
    try:
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=3, ssl_context=client_context(pki, cert=False))
        with pytest.raises((ssl.SSLError, ConnectionError, smpplib.exceptions.ConnectionError, OSError)):
            c.connect()         # TLS 1.3: the client's handshake ends before the server refuses: then the bind fails
            c.bind_transceiver(system_id="esme1", password="secret")
        assert wait(lambda: h.proxy.stats["tls_handshake_failures"] == 1)
        assert wait(lambda: h.proxy.caps.count == 0 and not h.proxy.sessions)
        assert h.sim.submits() == []
    finally:
        h.stop()


def test_a_peer_that_never_handshakes_holds_only_its_slot_and_is_closed_after_the_timeout(pipe, pki):
    h = tls_harness(pipe, pki, tls_handshake_timeout=0.5, max_connections_per_source=2)
    try:
        socks = [socket.create_connection(("127.0.0.1", h.proxy.tls_port), timeout=5) for _ in range(3)]
        # at the per-source cap the oldest unbound connection (no handshake yet) made room for the third
        assert socks[0].recv(1) == b""
        assert h.proxy.caps.stats["evicted"] == 1
        assert wait(lambda: h.proxy.caps.count == 2)
        t0 = time.monotonic()
        assert socks[1].recv(1) == b"" and socks[2].recv(1) == b""      # the handshake timeout closes them
        assert time.monotonic() - t0 < 3
        assert wait(lambda: h.proxy.caps.count == 0 and not h.proxy.sessions)
        assert h.proxy.stats["tls_handshake_failures"] == 2            # the evicted one is counted as evicted
        for s in socks:
            s.close()
        # and the listener still takes a real client
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=client_context(pki))
        c.connect()
        c.bind_transmitter(system_id="esme1", password="secret")
        assert submit(c).status == 0
        c.disconnect()
    finally:
        h.stop()


def test_tls_only_listener(pipe, pki):
    h = ProxyHarness(pipe, with_proxy=False).start()
    s = SmppSettings(listen="", tls_listen="127.0.0.1:0", tls_cert=str(pki / "server.pem"),
                     tls_key=str(pki / "server.key"), smsc=[f"127.0.0.1:{h.sim.port}"])
    acc = account_from_arg("esme1:secret")
    s.accounts[acc.system_id] = acc
    h.proxy = SmppProxy(pipe, s, h.vlog)
    try:
        h.call(h.proxy.start())
        assert h.call(h.proxy.wait_upstream(10))
        assert h.proxy.server is None and h.proxy.port == h.proxy.tls_port
        c = smpplib.client.Client("localhost", h.proxy.port, timeout=5, ssl_context=client_context(pki, cert=False))
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        assert submit(c).status == 0
        c.disconnect()
    finally:
        h.stop()


def _tls_smsc_harness(pipe, pki, ca):
    """The simulator behind TLS (server.pem) and a proxy whose link to it has tls = true, tls_ca = `ca`."""
    h = ProxyHarness(pipe, with_proxy=False).start()
    sim_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sim_ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))

    async def tls_sim():
        await h.sim.stop()
        h.sim = SmscSimulator(receipt_delay=None)
        h.sim.server = await asyncio.get_running_loop().create_server(lambda: _SimSession(h.sim), "127.0.0.1", 0,
                                                                       ssl=sim_ctx)
    h.call(tls_sim())
    addr = f"127.0.0.1:{h.sim.port}"
    s = SmppSettings(smsc=[addr], smsc_links={addr: {"tls": True, "tls_ca": str(ca), "tls_server_name": "localhost"}},
                     reconnect_min=0.1, reconnect_max=0.2)
    acc = account_from_arg("esme1:secret")
    s.accounts[acc.system_id] = acc
    h.proxy = SmppProxy(pipe, s, h.vlog)
    h.call(h.proxy.start("127.0.0.1:0"))
    return h


def test_an_smsc_link_over_tls_carries_a_submit(pipe, pki):
    h = _tls_smsc_harness(pipe, pki, pki / "ca.pem")
    try:
        assert h.call(h.proxy.wait_upstream(10))
        assert h.proxy.links[0].transport.get_extra_info("ssl_object") is not None
        c = smpplib.client.Client("127.0.0.1", h.proxy.port, timeout=5)
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        resp = submit(c)
        assert resp.status == 0 and resp.message_id
        assert [p.short_message for p in h.sim.submits()] == [HAM.encode()]
        c.disconnect()
    finally:
        h.stop()


def test_an_smsc_whose_certificate_does_not_verify_is_not_bound(pipe, pki):
    h = _tls_smsc_harness(pipe, pki, pki / "other_ca.pem")
    try:
        assert not h.call(h.proxy.wait_upstream(1.0))
        assert h.proxy.stats["smsc_tls_handshake_failures"] >= 1
        assert not any(p.command_id for _, p in h.sim.received)      # no bind (no password) sent in clear
    finally:
        h.stop()


# ------------------------------------------------------------------ config check

@pytest.fixture
def cfg(tmp_path, pki):
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    for f in pki.iterdir():
        shutil.copy(f, d / f.name)
    return d


def _server(cfg, extra) -> int:
    """`extra` put first in [server]; -> the line of [server]'s header (extra's first line is the one after)."""
    t = (cfg / "smpp.toml").read_text()
    (cfg / "smpp.toml").write_text(t.replace("[server]\n", "[server]\n" + extra, 1))
    return t.splitlines().index("[server]") + 1


def _serve(cfg, tmp_path, smsc_port, ready, err):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", tmp_path / "data",
                             "--smpp-listen", "127.0.0.1:0", "--smsc", f"127.0.0.1:{smsc_port}", "--esme-account",
                             "t:pw", "--sip-listen", "off", "--control-socket", "off", "--log", tmp_path / "v.jsonl",
                             "--ready-file", ready], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)


def test_serve_takes_binds_over_tls_and_refuses_a_key_that_does_not_match(cfg, tmp_path, pki, pipe):
    import re
    import signal
    _server(cfg, 'tls_listen = "127.0.0.1:0"\ntls_cert = "server.pem"\ntls_key = "server.key"\n'
                 'tls_client_ca = "ca.pem"\n')
    sim = ProxyHarness(pipe, with_proxy=False).start()
    ready, log = tmp_path / "ready", tmp_path / "stderr.log"
    p = _serve(cfg, tmp_path, sim.sim.port, ready, open(log, "w"))
    try:
        assert wait(lambda: ready.exists() or p.poll() is not None, 60) and ready.exists(), log.read_text()
        m = re.search(r"SMPP over TLS listening on 127\.0\.0\.1:0 \(port (\d+)\), client certificates required",
                      log.read_text())
        assert m, log.read_text()
        assert wait(lambda: any(s.bound for s in sim.sim.sessions), 10)
        c = smpplib.client.Client("localhost", int(m.group(1)), timeout=5, ssl_context=client_context(pki))
        c.connect()
        c.bind_transceiver(system_id="t", password="pw")
        assert submit(c).status == 0 and len(sim.sim.submits()) == 1
        c.disconnect()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except Exception:
            p.kill()
            p.wait()
        sim.stop()
    # the same with a key of another certificate: exit 2 at start, the file and line named, nothing listening
    t = (cfg / "smpp.toml").read_text()
    (cfg / "smpp.toml").write_text(t.replace('tls_key = "server.key"', 'tls_key = "client.key"'))
    p = _serve(cfg, tmp_path, 9, tmp_path / "ready2", open(log, "w"))
    assert p.wait(60) == 2
    line = t.splitlines().index('tls_key = "server.key"') + 1
    assert f"smpp.toml:{line}:1: [server] tls_key {cfg / 'client.key'} does not match the certificate" in log.read_text()
    assert "listening" not in log.read_text()


def test_the_accept_loop_lets_the_event_loop_run_between_queued_connections(pipe, pki):
    """asyncio's sock_accept returns at once while connections wait in the backlog (its future is already done:
    no yield), so a flood of connects kept the accept loop running and every bound session's reads, timers and
    SMSC answers waiting (uvloop yields; plain asyncio, serve without uvloop, did not). asyncio's own server
    takes at most `backlog` a turn; this listener yields after each."""
    async def run():
        s = SmppSettings(listen="", tls_listen="127.0.0.1:0", tls_cert=str(pki / "server.pem"),
                         tls_key=str(pki / "server.key"), max_connections_per_source=100,
                         tls_handshakes_per_source_burst=100)     # 60 at once from one address (tls_rate.py)
        proxy = SmppProxy(pipe, s)
        await proxy.start()
        seen = []                       # connections admitted, seen by a callback that runs once per loop turn

        def turn():
            seen.append(proxy.caps.count)
            if proxy.caps.count < 60 and len(seen) < 10_000:
                asyncio.get_running_loop().call_soon(turn)
        peers = [socket.create_connection(("127.0.0.1", proxy.tls_port)) for _ in range(60)]   # all in the backlog
        asyncio.get_running_loop().call_soon(turn)
        try:
            for _ in range(1000):
                if proxy.caps.count >= 60:
                    break
                await asyncio.sleep(0.01)
            assert proxy.caps.count == 60
            # the loop turned while the 60 were accepted, not only before and after them
            assert any(0 < n < 60 for n in seen), sorted(set(seen))
        finally:
            for p in peers:
                p.close()
            await proxy.stop()
    asyncio.run(run())


def test_closing_the_listener_leaves_its_fd_number_to_the_next_socket(pipe, pki):
    """close() cancelled the accept task and closed the socket at once, while asyncio still had the socket's
    reader to remove at the next turn (sock_accept's done callback, by fd number): a socket opened in between took
    that number and the stale removal hit it ('File descriptor N is used by transport', or its reader gone). A
    drain closes the listeners while the loop goes on. The socket is closed once the accept task is done."""
    async def run():
        s = SmppSettings(listen="", tls_listen="127.0.0.1:0", tls_cert=str(pki / "server.pem"),
                         tls_key=str(pki / "server.key"))
        proxy = SmppProxy(pipe, s)
        await proxy.start()
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception") or ctx["message"]))
        await asyncio.sleep(0.05)                   # the accept task waits in sock_accept
        proxy.tls_server.close()
        a, b = socket.socketpair()                  # the next sockets of this process: the lowest free numbers
        got = loop.create_future()

        class Reader(asyncio.Protocol):
            def data_received(self, data):
                got.done() or got.set_result(data)
        tr, _ = await loop.connect_accepted_socket(Reader, a)
        try:
            b.sendall(b"after the close")
            assert await asyncio.wait_for(got, 10) == b"after the close"
            assert errors == [], errors
            await proxy.tls_server.wait_closed()
            assert proxy.tls_server.sock.fileno() == -1         # closed all the same, once its task ended
        finally:
            tr.close()
            b.close()
            await proxy.stop()
    asyncio.run(run())


def test_a_reload_takes_a_certificate_renewed_in_place(cfg, pki, tmp_path):
    """certbot-style renewal rewrites tls_cert/tls_key at the same paths and asks for a reload: the reload answered
    ok with nothing to restart while the listener went on presenting the old certificate until it expired (and the
    expiry warning that went away was reported as a setting 'warnings' needing a restart). New handshakes now take
    the files as they are; a connection already up keeps its session."""
    from engine.control_reload import ReloadCommands
    from engine.smpp_proxy.accounts import load_smpp_settings
    _server(cfg, 'tls_listen = "127.0.0.1:0"\ntls_cert = "expired.pem"\ntls_key = "expired.key"\n')
    settings = load_smpp_settings(cfg)
    assert len(settings.warnings) == 1                  # expired at start: served all the same, with a warning
    h = ProxyHarness(build(cfg, tmp_path / "data"), settings=settings).start()

    class Reload(ReloadCommands):
        pipe, proxy, sip, args = h.proxy.pipeline, h.proxy, None, None

    def presented():
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", h.proxy.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).subject.rfc4514_string()
    try:
        assert presented() == "CN=expired"
        shutil.copy(pki / "server.pem", cfg / "expired.pem")        # renewed in place
        shutil.copy(pki / "server.key", cfg / "expired.key")
        ans = h.call(Reload().reload(["accounts"]))
        assert ans["ok"], ans
        assert set(ans["accounts"].get("needs_restart", [])) <= {"smsc"}, ans    # (the harness's simulator)
        assert ans["accounts"]["tls_reloaded"] is True
        assert presented() == "CN=server"
    finally:
        h.stop()
