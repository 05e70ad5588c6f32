"""A client certificate tied to an account (engine/smpp_proxy/tls_identity.py): `[[account]] tls_client_subject` /
`tls_client_sha256` let only that certificate bind as the account, over the TLS listener only. Two client
certificates from the same CA (test_smpp_tls's `pki`, plus client2 here)."""
import hashlib
import shutil
import ssl

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.configcheck import load_config
from engine.smpp_proxy.tls_identity import normal_sha256, parse_subject

from .conftest import run_cli
from .test_smpp_tls import _issue, _write, cfg, pipe, pki, submit, tls_harness      # noqa: F401 (fixtures)
from .test_smpp_proxy import wait


@pytest.fixture(scope="module")
def pki2(pki):
    """pki with client2.pem/.key: CN=client2, O=Acme, from the same CA as client.pem (CN=client)."""
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    cert = _issue("client2", k, "test CA", ca_key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client2"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(cert.issuer).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(cert.not_valid_before_utc)
            .not_valid_after(cert.not_valid_after_utc))
    from cryptography.hazmat.primitives import hashes
    _write(pki, "client2", cert.sign(ca_key, hashes.SHA256()), k)
    return pki


def ctx_for(pki, name):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return ctx


def bind_status(port, ctx=None) -> int:
    """A bind_transceiver as esme1 (right password) -> its command_status."""
    c = smpplib.client.Client("localhost", port, timeout=5, ssl_context=ctx)
    c.connect()
    try:
        c.bind_transceiver(system_id="esme1", password="secret")
        assert submit(c).status == 0
        return 0
    except smpplib.exceptions.PDUError as e:
        return e.args[1]
    finally:
        c.disconnect()


def sha256_of(pki, name) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert((pki / f"{name}.pem").read_text())).hexdigest()


def test_an_account_tied_to_a_subject_binds_only_with_that_certificate_and_only_over_tls(pipe, pki2):
    h = tls_harness(pipe, pki2)
    try:
        h.proxy.accounts["esme1"].tls_client_subject = "CN=client"
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client")) == 0
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == smpplib.consts.SMPP_ESME_RBINDFAIL
        assert bind_status(h.proxy.port) == smpplib.consts.SMPP_ESME_RBINDFAIL         # the plain listener
        assert h.proxy.stats["binds_refused_tls_client"] == 2
        # the whole subject, attributes in any order; a subset (CN alone) is not client2's subject
        h.proxy.accounts["esme1"].tls_client_subject = r"O=Acme\, Inc,CN=client2"
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == 0
        h.proxy.accounts["esme1"].tls_client_subject = "CN=client2"
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == smpplib.consts.SMPP_ESME_RBINDFAIL
        assert len(h.sim.submits()) == 2
    finally:
        h.stop()


def test_an_account_pinned_by_sha256_binds_only_with_that_certificate(pipe, pki2):
    h = tls_harness(pipe, pki2)
    try:
        h.proxy.accounts["esme1"].tls_client_sha256 = sha256_of(pki2, "client2")
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == 0
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client")) == smpplib.consts.SMPP_ESME_RBINDFAIL
        assert bind_status(h.proxy.port) == smpplib.consts.SMPP_ESME_RBINDFAIL
        # both set: both must match
        h.proxy.accounts["esme1"].tls_client_subject = "CN=client"
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == smpplib.consts.SMPP_ESME_RBINDFAIL
        assert h.proxy.stats["binds_refused_tls_client"] == 3
    finally:
        h.stop()


def test_subject_and_fingerprint_syntax():
    assert parse_subject("CN=a, o=B\\2C C+OU=x") == (("commonName", "a"), ("organizationName", "B, C"),
                                                    ("organizationalUnitName", "x"))
    assert parse_subject(r"emailAddress=a\=b@x") == (("emailAddress", "a=b@x"),)
    for bad, says in (("CN", "not NAME=VALUE"), ("XX=1", "unknown attribute 'XX'"), ("CN=", "CN has no value"),
                      ("CN=a\\", "lone")):
        with pytest.raises(ValueError, match=says):
            parse_subject(bad)
    assert normal_sha256("AB:" * 31 + "AB") == "ab" * 32
    with pytest.raises(ValueError):
        normal_sha256("ab" * 31)


def _account(cfg, server: str, account: str) -> tuple:
    """smpp.toml with `server` put first in [server] and an [[account]] of esme1 with `account`; -> (text, path)."""
    t = (cfg / "smpp.toml").read_text().replace("[server]\n", "[server]\n" + server, 1)
    t += ('\n[[account]]\nsystem_id = "esme1"\npassword_hash = "pbkdf2_sha256$1000$00$00"\n' + account)
    (cfg / "smpp.toml").write_text(t)
    return t, cfg / "smpp.toml"


TLS = 'tls_listen = "127.0.0.1:3550"\ntls_cert = "server.pem"\ntls_key = "server.key"\ntls_client_ca = "ca.pem"\n'


@pytest.mark.parametrize("server,account,says", [
    ("", 'tls_client_subject = "CN=client"\n', "tls_client_subject needs [server] tls_listen and tls_client_ca"),
    (TLS.replace('tls_client_ca = "ca.pem"\n', ""), 'tls_client_sha256 = "' + "ab" * 32 + '"\n',
     "tls_client_sha256 needs [server] tls_listen and tls_client_ca"),
    (TLS, 'tls_client_sha256 = "abcd"\n', "tls_client_sha256 must be a SHA-256 fingerprint"),
    (TLS, 'tls_client_subject = "CNN=client"\n', "tls_client_subject 'CNN=client': unknown attribute 'CNN'"),
])
def test_config_check_names_the_account_key_line(cfg, server, account, says):
    t, p = _account(cfg, server, account)
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    key = account.split(" =")[0]
    line = next(i for i, l in enumerate(t.splitlines(), 1) if l.startswith(key + " ="))
    assert f"{p}:{line}:1: account #1 'esme1': {says}" in r.stderr, r.stderr


def test_config_check_takes_a_tied_account(cfg, pki2):
    shutil.copy(pki2 / "client2.pem", cfg / "client2.pem")
    fp = ":".join(sha256_of(pki2, "client2")[i:i + 2].upper() for i in range(0, 64, 2))    # openssl's form
    _account(cfg, TLS, f'tls_client_subject = "CN=client2,O=Acme\\\\, Inc"\ntls_client_sha256 = "{fp}"\n')
    c = load_config(cfg)
    assert c.errors == [], c.errors
    acc = c.smpp.accounts["esme1"]
    assert acc.tls_client_sha256 == sha256_of(pki2, "client2") and acc.tls_client_subject == r"CN=client2,O=Acme\, Inc"


def test_a_reload_that_ties_an_account_to_a_certificate_unbinds_other_certificates(pipe, pki2):
    from dataclasses import replace
    from engine.smpp_proxy.live_accounts import apply_accounts
    h = tls_harness(pipe, pki2)
    try:
        clients = []
        for name in ("client", "client2"):
            c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=ctx_for(pki2, name))
            c.connect()
            c.bind_transceiver(system_id="esme1", password="secret")
            clients.append(c)
        new = {"esme1": replace(h.proxy.accounts["esme1"], tls_client_subject="CN=client")}
        ans = h.call(_apply(apply_accounts, h.proxy, new))
        assert ans["changed"] == ["esme1"], ans
        assert wait(lambda: len(h.proxy.binds["esme1"]) == 1)
        assert h.proxy.binds["esme1"][0].transport.get_extra_info("ssl_object").getpeercert()["subject"] == \
            ((("commonName", "client"),),)
        assert h.proxy.stats["unbound_by_reload"] == 1
        for c in clients:
            c.disconnect()
    finally:
        h.stop()


async def _apply(f, *a):
    return f(*a)
