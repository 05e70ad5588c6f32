"""Revocation of the TLS listener's client certificates (engine/smpp_proxy/tls_crl.py): `[server] tls_client_crl`.
Real handshakes on 127.0.0.1 with the CA and client certificates of test_smpp_tls / _accounts (client: CN=client,
client2: CN=client2, both from ca.pem); CRLs made here with `cryptography`."""
import datetime as dt
import logging
import re
import shutil
import socket
import ssl
import struct

import pytest
import smpplib.client
import smpplib.consts
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine.app import build
from engine.configcheck import load_config
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import run_cli
from .test_smpp_proxy import wait
from .test_smpp_tls import _serve, _server, cfg, pipe, pki, tls_harness     # noqa: F401 (fixtures)
from .test_smpp_tls_accounts import bind_status, ctx_for, pki2               # noqa: F401 (fixtures)

TLS = 'tls_listen = "127.0.0.1:0"\ntls_cert = "server.pem"\ntls_key = "server.key"\ntls_client_ca = "ca.pem"\n'


def write_crl(pki, path, revoked=(), next_days=7, issuer="ca"):
    """A CRL of `issuer` (ca or other_ca) listing the certificates named in `revoked`, its nextUpdate
    `next_days` from now."""
    now = dt.datetime.now(dt.timezone.utc)
    key = serialization.load_pem_private_key((pki / f"{issuer}.key").read_bytes(), None) \
        if (pki / f"{issuer}.key").exists() else ec.generate_private_key(ec.SECP256R1())   # (other CA's: by name)
    ca = x509.load_pem_x509_certificate((pki / f"{issuer}.pem").read_bytes())
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now - dt.timedelta(days=2))
         .next_update(now + dt.timedelta(days=next_days)))
    for name in revoked:
        serial = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes()).serial_number
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - dt.timedelta(hours=1)).build())
    path.write_bytes(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def handshake_refused(port, ctx) -> bool:
    """A TLS handshake and an enquire_link: True when the server refused the certificate (TLS 1.3: the client's
    handshake ends first, the refusal comes as an alert or a close at the first read)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(struct.pack(">IIII", 16, 0x15, 0, 1))
            return s.recv(16) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def test_a_revoked_client_is_refused_at_the_handshake_and_another_binds(pipe, pki2, tmp_path, caplog):
    crl = write_crl(pki2, tmp_path / "crl.pem", revoked=["client"])
    h = tls_harness(pipe, pki2, tls_client_crl=str(crl))
    try:
        caplog.set_level(logging.INFO, "telfilter.smpp")
        assert handshake_refused(h.proxy.tls_port, ctx_for(pki2, "client"))
        assert handshake_refused(h.proxy.tls_port, ctx_for(pki2, "client"))
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == 0
        assert wait(lambda: h.proxy.stats["tls_client_revoked"] == 2)
        assert h.proxy.stats["tls_handshake_failures"] == 2 and len(h.sim.submits()) == 1
        lines = [r.getMessage() for r in caplog.records if "revoked" in r.getMessage()]
        assert lines == ["TLS client certificate of 127.0.0.1 refused: revoked (tls_client_crl); 1 refusal(s) from "
                         "it since the last such line"], lines           # once per source per 10 s
        assert wait(lambda: h.proxy.caps.count == 0)
    finally:
        h.stop()


def test_an_expired_crl_refuses_every_client_and_says_so(pipe, pki2, tmp_path, caplog):
    """Loaded valid, expired since (as a CRL whose nextUpdate passes while serve runs): OpenSSL refuses every
    certificate; the error says why, and /metrics has the nextUpdate to alert on before."""
    from engine.metrics import Metrics
    from prometheus_client import generate_latest
    crl = write_crl(pki2, tmp_path / "crl.pem", next_days=7)
    h = tls_harness(pipe, pki2, tls_client_crl=str(crl))
    try:
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == 0
        nxt = h.proxy.tls_server.crl_next_update
        assert nxt == pytest.approx(dt.datetime.now(dt.timezone.utc).timestamp() + 7 * 86400, abs=120)
        text = generate_latest(Metrics(h.proxy.pipeline, proxy=h.proxy).registry).decode()
        got = re.search(r"^telfilter_smpp_tls_client_crl_next_update_seconds (\S+)$", text, re.M)
        assert got and float(got.group(1)) == nxt, text
        write_crl(pki2, crl, next_days=-1)
        from engine.smpp_proxy.tls import server_context
        h.proxy.tls_server.context = server_context(h.proxy.settings.tls_cert, h.proxy.settings.tls_key,
                                                    h.proxy.settings.tls_client_ca, str(crl))
        caplog.set_level(logging.INFO, "telfilter.smpp")
        assert handshake_refused(h.proxy.tls_port, ctx_for(pki2, "client2"))
        assert wait(lambda: h.proxy.stats["tls_client_crl_expired"] == 1)
        # the line is written by serve's thread just after it counts: waited for too, not read at once
        assert wait(lambda: any(r.levelname == "ERROR" and "tls_client_crl has expired" in r.getMessage()
                                for r in caplog.records))
    finally:
        h.stop()


def test_a_reload_with_a_new_crl_revokes_the_second_on_its_next_connection(cfg, pki2, tmp_path):
    from engine.control_reload import ReloadCommands
    from engine.smpp_proxy.accounts import load_smpp_settings
    shutil.copy(pki2 / "client2.pem", cfg / "client2.pem")
    write_crl(pki2, cfg / "crl.pem", revoked=["client"])
    _server(cfg, TLS + 'tls_client_crl = "crl.pem"\n')
    h = ProxyHarness(build(cfg, tmp_path / "data"), settings=load_smpp_settings(cfg)).start()

    class Reload(ReloadCommands):
        pipe, proxy, sip, args = h.proxy.pipeline, h.proxy, None, None
    ctx2 = ctx_for(pki2, "client2")
    try:
        assert handshake_refused(h.proxy.tls_port, ctx_for(pki2, "client"))
        # client2 binds, and keeps a TLS 1.3 session ticket that resumes (so the refusal below is not for want of one)
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=ctx2)
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        with socket.create_connection(("127.0.0.1", h.proxy.tls_port), timeout=5) as raw, ctx2.wrap_socket(raw) as s:
            s.sendall(struct.pack(">IIII", 16, 0x15, 0, 1))
            assert len(s.recv(16)) == 16
            ticket = s.session
        with socket.create_connection(("127.0.0.1", h.proxy.tls_port), timeout=5) as raw, \
                ctx2.wrap_socket(raw, session=ticket) as s:
            assert s.session_reused
        # a CRL that does not parse, then one expired: refused with the file and why, the old one stays in force
        (cfg / "crl.pem").write_text("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
        ans = h.call(Reload().reload(["accounts"]))
        assert not ans["ok"] and any(f"tls_client_crl {cfg / 'crl.pem'}: CRL #1 is not a DER X.509 CRL" in e
                                     for e in ans["accounts"]["errors"]), ans
        write_crl(pki2, cfg / "crl.pem", revoked=["client", "client2"], next_days=-1)
        ans = h.call(Reload().reload(["accounts"]))
        assert not ans["ok"] and any("CRL #1 (issuer CN=test CA) expired: its nextUpdate was" in e
                                     for e in ans["accounts"]["errors"]), ans
        assert bind_status(h.proxy.tls_port, ctx2) == 0
        # a current CRL that revokes client2 too: in force for its next connection, a resumed session included
        write_crl(pki2, cfg / "crl.pem", revoked=["client", "client2"])
        ans = h.call(Reload().reload(["accounts"]))
        assert ans["ok"] and ans["accounts"]["tls_reloaded"] is True, ans
        assert h.proxy.settings.tls_client_crl == str(cfg / "crl.pem")
        revoked = h.proxy.stats["tls_client_revoked"]
        assert handshake_refused(h.proxy.tls_port, ctx2)
        with socket.create_connection(("127.0.0.1", h.proxy.tls_port), timeout=5) as raw:
            try:
                with ctx2.wrap_socket(raw, session=ticket) as s:
                    assert not s.session_reused
                    s.sendall(struct.pack(">IIII", 16, 0x15, 0, 2))
                    assert s.recv(16) == b""
            except (ssl.SSLError, ConnectionError):
                pass
        assert wait(lambda: h.proxy.stats["tls_client_revoked"] == revoked + 2)
        assert c.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX      # the connection up keeps its session
        c.disconnect()
    finally:
        h.stop()


@pytest.mark.parametrize("crl,extra,says", [
    ("missing.pem", "", "tls_client_crl {d}/missing.pem: no such file"),
    ("ca.pem", "", "tls_client_crl {d}/ca.pem: holds no PEM CRL (-----BEGIN X509 CRL-----)"),
    ("other.crl", "", "tls_client_crl {d}/other.crl: CRL #1 (issuer CN=other CA) is not issued by a certificate of "
                      "tls_client_ca {d}/ca.pem"),
    ("expired.crl", "", "tls_client_crl {d}/expired.crl: CRL #1 (issuer CN=test CA) expired: its nextUpdate was"),
    ("good.crl", "nca", "tls_client_crl needs tls_client_ca"),
])
def test_config_check_names_a_crl_that_cannot_work(cfg, pki, crl, extra, says):
    write_crl(pki, cfg / "other.crl", issuer="other_ca")
    write_crl(pki, cfg / "expired.crl", next_days=-1)
    write_crl(pki, cfg / "good.crl")
    tls = TLS.replace('tls_client_ca = "ca.pem"\n', "") if extra == "nca" else TLS
    head = _server(cfg, tls + f'tls_client_crl = "{crl}"\n')
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    line = head + tls.count("\n") + 1
    assert f"{cfg / 'smpp.toml'}:{line}:1: [server] {says.format(d=cfg)}" in r.stderr, r.stderr


def test_a_ca_without_a_crl_is_a_warning_and_a_good_crl_loads(cfg, pki):
    write_crl(pki, cfg / "good.crl")
    (cfg / "two_cas.pem").write_bytes((pki / "ca.pem").read_bytes() + (pki / "other_ca.pem").read_bytes())
    _server(cfg, TLS.replace('"ca.pem"', '"two_cas.pem"') + 'tls_client_crl = "good.crl"\n')
    c = load_config(cfg)
    assert c.errors == [], c.errors
    assert c.smpp.tls_client_crl == str(cfg / "good.crl")
    assert len(c.smpp.warnings) == 1 and "no CRL for CN=other CA of tls_client_ca: every client certificate it " \
        "issues is refused ('unable to get certificate CRL')" in c.smpp.warnings[0], c.smpp.warnings


def test_serve_refuses_to_start_with_a_bad_crl(cfg, tmp_path):
    (cfg / "crl.pem").write_text("not a CRL\n")
    _server(cfg, TLS + 'tls_client_crl = "crl.pem"\n')
    log = tmp_path / "stderr.log"
    p = _serve(cfg, tmp_path, 9, tmp_path / "ready", open(log, "w"))
    assert p.wait(60) == 2
    assert f"[server] tls_client_crl {cfg / 'crl.pem'}: holds no PEM CRL" in log.read_text(), log.read_text()
    assert "listening" not in log.read_text()


def test_a_damaged_crl_is_a_reason_never_an_exception(pki, tmp_path):
    """check_crl reads DER itself (serve has no X.509 library beside ssl): a damaged CRL (bytes changed, cut
    short) is refused with a reason. A damaged issuer Name escaped as ValueError from the message's formatting."""
    import base64
    import random
    import time
    from engine.smpp_proxy.tls_crl import check_crl
    pem = write_crl(pki, tmp_path / "good.pem", revoked=["client"]).read_bytes()
    der = base64.b64decode(b"".join(pem.strip().split(b"\n")[1:-1]))
    rnd, f, reasons = random.Random(7), tmp_path / "damaged.pem", set()
    for _ in range(1000):
        b = bytearray(der)
        for _ in range(rnd.choice((1, 2, 4, 8))):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        if rnd.random() < 0.3:
            b = b[:rnd.randrange(len(b))]
        f.write_bytes(b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(bytes(b)) + b"-----END X509 CRL-----\n")
        why, _, _ = check_crl(str(f), str(pki / "ca.pem"), time.time())
        reasons.add(why.split(" (")[0] if why else None)
    assert "CRL #1 is not a DER X.509 CRL" in reasons and "OpenSSL cannot load it" in reasons, reasons


def test_revoked_refusals_are_logged_once_per_source_per_interval_and_the_sources_are_bounded(caplog):
    from collections import defaultdict
    from engine.smpp_proxy.tls_crl import CERT_REVOKED, LOG_EVERY, CertRefusals
    e = ssl.SSLCertVerificationError("certificate verify failed: certificate revoked")
    e.verify_code = CERT_REVOKED
    stats = defaultdict(int)
    r = CertRefusals(stats, max_sources=2)
    caplog.set_level(logging.INFO, "telfilter.smpp")
    for now, host in ((0, "10.0.0.1"), (1, "10.0.0.1"), (2, "2001:db8::1"), (3, "2001:db8::2"),   # one /64
                      (4, "10.0.0.3"), (5, "10.0.0.1"), (6, "10.0.0.3"), (LOG_EVERY + 4, "10.0.0.3")):
        assert r.refused(host, e, now)
    lines = [m.getMessage() for m in caplog.records]
    # 10.0.0.1 again at 5 s: forgotten at 4 s (two sources kept), so logged again (the bound's price)
    assert [m.split(" refused")[0].rsplit(" ", 1)[1] for m in lines] == \
        ["10.0.0.1", "2001:db8::1", "10.0.0.3", "10.0.0.1", "10.0.0.3"], lines
    assert "; 2 refusal(s) from it since the last such line" in lines[4], lines
    assert stats["tls_client_revoked"] == 8 and len(r.sources) == 2
    assert not r.refused("10.0.0.1", ssl.SSLError("other"), 50) and stats["tls_client_revoked"] == 8


_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("seed", range(40))
def test_the_der_reader_agrees_with_cryptography_on_issuer_and_dates(seed):
    """tls_crl.parse_crl (serve's own minimal DER reader) against `cryptography` as the independent reader, on
    CRLs with random issuers (several RDNs, UTF-8), dates on either side of 2050 (UTCTime vs GeneralizedTime)
    and 0-50 revoked entries."""
    import random

    from cryptography.x509.oid import NameOID

    from engine.smpp_proxy.tls_crl import parse_crl
    rnd = random.Random(seed)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, rnd.choice(["CA", "Viettel CA ", "Trạm CA số 1", "x" * 60]))]
    if rnd.random() < 0.6:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, rnd.choice(["Acme, Inc", "Mạng di động"])))
    if rnd.random() < 0.4:
        attrs.insert(0, x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"))
    issuer = x509.Name(attrs)
    base = dt.datetime(rnd.choice([2001, 2026, 2049, 2051, 2090]), rnd.randint(1, 12), rnd.randint(1, 28),
                       rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59), tzinfo=dt.timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(base)      # (it needs nextUpdate)
         .next_update(base + dt.timedelta(days=rnd.randint(1, 400), seconds=rnd.randint(0, 86399))))
    for _ in range(rnd.randint(0, 50)):
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(rnd.getrandbits(120) + 1)
                                      .revocation_date(base).build())
    crl = b.sign(_KEY, hashes.SHA256())
    got = parse_crl(crl.public_bytes(serialization.Encoding.DER))
    assert got["issuer"] == crl.issuer.public_bytes()
    assert got["this_update"] == crl.last_update_utc.timestamp()
    assert got["next_update"] == crl.next_update_utc.timestamp()
