"""An --esme-accounts-file line ties its account to a client certificate as smpp.toml's [[account]] does
(tls_identity.py): `esme1:secret tls_client_subject=... tls_client_sha256=...`, checked with the same messages at
file:line, on start and on `ctl reload accounts`. Before, such a line was refused ("expected SYSTEM_ID:PASSWORD"):
only smpp.toml's accounts could be tied to a certificate."""
import shutil
from types import SimpleNamespace

import pytest
import smpplib.client
import smpplib.consts

from engine.app import build
from engine.credentials import esme_accounts
from engine.smpp_proxy.harness import ProxyHarness

from .test_smpp_proxy import wait
from .test_smpp_tls import _server, cfg, pki                                    # noqa: F401 (fixtures)
from .test_smpp_tls_accounts import TLS, bind_status, ctx_for, pki2, sha256_of  # noqa: F401 (fixtures)


def _args(f):
    return SimpleNamespace(esme_account=[], esme_accounts_file=str(f), smpp_listen=None, smsc=None,
                           smsc_system_id=None, smsc_password=None, smsc_password_file=None)


def _file(tmp_path, text):
    f = tmp_path / "esme.accounts"
    f.write_text(text)
    f.chmod(0o600)
    return f


def openssl_fp(pki, name):          # as `openssl x509 -noout -fingerprint -sha256` prints it
    h = sha256_of(pki, name)
    return ":".join(h[i:i + 2].upper() for i in range(0, 64, 2))


def test_a_file_line_carries_a_subject_and_a_fingerprint(tmp_path, pki2, monkeypatch):
    monkeypatch.delenv("TELFILTER_ESME_ACCOUNTS", raising=False)
    f = _file(tmp_path, "plain:pw\n# tied\nesme1:secret  tls_client_subject=CN=client2,O=Acme\\, Inc "
                        f"tls_client_sha256={openssl_fp(pki2, 'client2')}\nesme2:pw2 tls_client_subject = CN=a b\n")
    errors = []
    got = {a.system_id: a for a in esme_accounts(_args(f), errors, warn=False)}
    assert errors == [], errors
    assert (got["esme1"].tls_client_subject, got["esme1"].tls_client_sha256) == \
        (r"CN=client2,O=Acme\, Inc", sha256_of(pki2, "client2"))
    assert got["esme2"].tls_client_subject == "CN=a b" and got["esme2"].tls_client_sha256 == ""
    assert got["plain"].tls_client_subject == got["plain"].tls_client_sha256 == ""
    assert got["esme1"].origin == f"{f}:3"


@pytest.mark.parametrize("tail,mutual,says", [     # smpp.toml's messages (test_smpp_tls_accounts) at file:line
    ("tls_client_sha256=abcd", True, "tls_client_sha256 must be a SHA-256 fingerprint"),
    ("tls_client_subject=CNN=client", True, "tls_client_subject 'CNN=client': unknown attribute 'CNN'"),
    ("tls_client_subject=CN=client", False, "tls_client_subject needs [server] tls_listen and tls_client_ca"),
    ("tls_client_sha256=" + "ab" * 32 + " tls_client_sha256=" + "cd" * 32, True, "tls_client_sha256 given twice"),
])
def test_a_bad_tls_value_in_the_file_is_named_at_its_line(tmp_path, monkeypatch, tail, mutual, says):
    monkeypatch.delenv("TELFILTER_ESME_ACCOUNTS", raising=False)
    f = _file(tmp_path, f"ok:pw\nesme1:secret {tail}\n")
    errors = []
    got = esme_accounts(_args(f), errors, warn=False, mutual_tls=mutual)
    assert [a.system_id for a in got] == ["ok"]
    assert len(errors) == 1 and errors[0].startswith(f"{f}:2: account 'esme1': {says}"), errors
    assert "secret" not in errors[0]


def test_serve_refuses_a_tied_account_without_mutual_tls_at_start(cfg, tmp_path):
    import subprocess
    import sys
    from .conftest import ROOT
    f = _file(tmp_path, "esme1:secret tls_client_sha256=" + "ab" * 32 + "\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", tmp_path / "d",
                        "--smsc", "127.0.0.1:9", "--esme-accounts-file", f, "--sip-listen", "off",
                        "--control-socket", "off", "--smpp-listen", "127.0.0.1:0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"{f}:1: account 'esme1': tls_client_sha256 needs [server] tls_listen and tls_client_ca" in r.stderr, \
        r.stderr


def test_a_tied_file_account_binds_with_its_certificate_only_and_a_reload_reties_it(cfg, pki2, tmp_path,
                                                                                    monkeypatch):
    from engine.control_reload import ReloadCommands
    from engine.smpp_proxy.accounts import load_smpp_settings
    monkeypatch.delenv("TELFILTER_ESME_ACCOUNTS", raising=False)
    shutil.copy(pki2 / "client2.pem", cfg / "client2.pem")
    _server(cfg, TLS.replace("127.0.0.1:3550", "127.0.0.1:0"))
    f = _file(tmp_path, f"esme1:secret tls_client_sha256={openssl_fp(pki2, 'client2')}\n")
    settings, errors = load_smpp_settings(cfg), []
    for acc in esme_accounts(_args(f), errors, warn=False, mutual_tls=True):
        settings.accounts[acc.system_id] = acc
    assert errors == []
    h = ProxyHarness(build(cfg, tmp_path / "data"), accounts=(), settings=settings).start()

    class Reload(ReloadCommands):
        pipe, proxy, sip, args = h.proxy.pipeline, h.proxy, None, _args(f)
    try:
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client")) == smpplib.consts.SMPP_ESME_RBINDFAIL
        assert bind_status(h.proxy.port) == smpplib.consts.SMPP_ESME_RBINDFAIL        # plain TCP
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=ctx_for(pki2, "client2"))
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        # the file now ties esme1 to the other certificate: client2's bind is unbound, client binds
        f.write_text("esme1:secret tls_client_subject=CN=client\n")
        ans = h.call(Reload().reload(["accounts"]))
        assert ans["ok"] and ans["accounts"]["changed"] == ["esme1"], ans
        assert [u["why"] for u in ans["accounts"]["unbound"]] == ["client certificate no longer allowed"], ans
        assert wait(lambda: not h.proxy.binds.get("esme1"))
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client")) == 0
        # a bad value: refused at its line, the file's accounts as they were
        f.write_text("esme1:secret tls_client_subject=CN=client tls_client_sha256=xyz\n")
        ans = h.call(Reload().reload(["accounts"]))
        assert not ans["ok"] and ans["accounts"]["errors"] == [
            f"{f}:1: account 'esme1': tls_client_sha256 must be a SHA-256 fingerprint: 64 hex digits, colons allowed "
            "(openssl x509 -noout -fingerprint -sha256 -in CERT)"], ans
        assert h.proxy.accounts["esme1"].tls_client_subject == "CN=client"
        assert bind_status(h.proxy.tls_port, ctx_for(pki2, "client2")) == smpplib.consts.SMPP_ESME_RBINDFAIL
        c.disconnect()
    finally:
        h.stop()
