"""SMPP over TLS's config check (engine/smpp_proxy/tls.py check_tls, config_checks.py): every bad PEM file and
value named at its key's line, an expired certificate a warning, the SMSC links' TLS keys. Moved from
test_smpp_tls.py (its `cfg` and `_server` are shared with its serve and reload tests)."""
import os

import pytest

from engine.configcheck import load_config

from .conftest import run_cli
from .test_smpp_tls import _server, cfg, pki      # noqa: F401 (fixtures)


def test_config_check_loads_tls_files_relative_to_the_config_dir(cfg):
    _server(cfg, 'tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "server.key"\n'
                 'tls_client_ca = "ca.pem"\n')
    c = load_config(cfg)
    assert c.errors == [] and c.smpp.warnings == []
    assert c.smpp.tls_cert == str(cfg / "server.pem") and c.smpp.tls_client_ca == str(cfg / "ca.pem")


@pytest.mark.parametrize("extra,line,says", [
    ('tls_listen = "0.0.0.0:3550"\ntls_cert = "nope.pem"\ntls_key = "server.key"\n', 3, "tls_cert {d}/nope.pem: no such file"),
    ('tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "client.key"\n', 4,
     "tls_key {d}/client.key does not match the certificate {d}/server.pem"),
    ('tls_listen = "0.0.0.0:3550"\ntls_cert = "server.key"\ntls_key = "server.key"\n', 3,
     "tls_cert {d}/server.key: holds no PEM certificate"),
    ('tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "server.pem"\n', 4,
     "tls_key {d}/server.pem: not a usable PEM private key"),
    ('tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "server.key"\ntls_client_ca = "x/ca.pem"\n', 5,
     "tls_client_ca {d}/x/ca.pem: no such file"),
    ('tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\n', 2, "tls_listen needs tls_key"),
    ('tls_listen = "0.0.0.0:99999"\ntls_cert = "server.pem"\ntls_key = "server.key"\n', 2,
     "tls_listen must be HOST:PORT"),
    ('tls_handshake_timeout = 0\n', 2, "tls_handshake_timeout must be at least 0.1"),
    ('tls_handshakes_per_second = 0.5\n', 2, "tls_handshakes_per_second must be at least 1 handshakes a second"),
    ('tls_handshakes_per_source_burst = 0\n', 2, "tls_handshakes_per_source_burst must be at least 1 handshakes"),
])
def test_config_check_names_the_file_line_and_pem_file(cfg, extra, line, says):
    line += _server(cfg, extra) - 1
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{cfg / 'smpp.toml'}:{line}:1: [server] {says.format(d=cfg)}" in r.stderr, r.stderr


def test_an_unreadable_key_is_an_error(cfg):
    import os
    if os.geteuid() == 0:
        pytest.skip("root reads a file of mode 000")
    (cfg / "server.key").chmod(0)
    _server(cfg, 'tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "server.key"\n')
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and f"tls_key {cfg / 'server.key'}: cannot be read (Permission denied)" in r.stderr


def test_an_expired_certificate_is_a_warning(cfg):
    at = _server(cfg, 'tls_listen = "0.0.0.0:3550"\ntls_cert = "expired.pem"\ntls_key = "expired.key"\n') + 2
    # (an account, so the certificate's is the one warning: none would be a warning of its own)
    r = run_cli("config", "check", cfg, env={"TELFILTER_ESME_ACCOUNTS": "esme1:pw"})
    assert r.returncode == 0, r.stderr
    assert f"{cfg / 'smpp.toml'}:{at}:1: [server] tls_cert {cfg / 'expired.pem'}: the certificate expired on" in r.stderr
    assert "1 warning(s)" in r.stderr


def test_smsc_link_tls_keys_are_checked(cfg):
    t = (cfg / "smpp.toml").read_text()
    t = t.replace('smsc = ["127.0.0.1:2776"]',
                  'smsc = [{address = "127.0.0.1:2776", tls = true, tls_ca = "missing-ca.pem"}, '
                  '{address = "127.0.0.1:2777", tls_server_name = "smsc.example"}, '
                  '{address = "127.0.0.1:2778", tls = "yes"}]')
    (cfg / "smpp.toml").write_text(t)
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2
    line = next(i for i, l in enumerate(t.splitlines(), 1) if l.startswith("smsc = "))
    at = f"{cfg / 'smpp.toml'}:{line}:1: [upstream] smsc"
    assert f"{at} 127.0.0.1:2776: tls_ca {cfg / 'missing-ca.pem'}: no such file" in r.stderr, r.stderr
    assert f"{at} 127.0.0.1:2777: tls_server_name without tls = true" in r.stderr, r.stderr
    assert f"{at} #3: tls has the wrong type: 'yes'" in r.stderr, r.stderr
    good = t.replace('"missing-ca.pem"', '"ca.pem"').replace(', tls_server_name = "smsc.example"', "")
    (cfg / "smpp.toml").write_text(good.replace(', {address = "127.0.0.1:2778", tls = "yes"}', ""))
    c = load_config(cfg)
    assert c.errors == []
    assert c.smpp.smsc_links["127.0.0.1:2776"] == {"tls": True, "tls_ca": str(cfg / "ca.pem"),
                                                   "tls_server_name": "127.0.0.1"}


def test_a_private_key_others_can_read_is_a_warning(cfg):
    """The TLS listener's private key is a secret as the secrets files are (README "Secrets": a file others can
    read gets a `chmod 600` warning): a key of mode 644 was loaded without a word."""
    at = _server(cfg, 'tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "server.key"\n') + 3
    key = cfg / "server.key"
    key.chmod(0o644)
    r = run_cli("config", "check", cfg, env={"TELFILTER_ESME_ACCOUNTS": "esme1:pw"})
    assert r.returncode == 0, r.stderr
    assert f"{cfg / 'smpp.toml'}:{at}:1: [server] tls_key {key} can be read by every local user (mode 644): chmod " \
        "600 it (640 with a group serve's user is in)" in r.stderr and "1 warning(s)" in r.stderr, r.stderr
    for mode in (0o600, 0o640):         # (0640 root:ssl-cert: Debian's layout for keys, read through the group)
        key.chmod(mode)
        r = run_cli("config", "check", "--strict", cfg, env={"TELFILTER_ESME_ACCOUNTS": "esme1:pw"})
        assert r.returncode == 0 and "warning" not in r.stderr, (oct(mode), r.stderr)


def test_a_key_replaced_while_it_is_checked_is_no_traceback(cfg, monkeypatch):
    """The key's mode is read after it was loaded: a renewal that moved it away in between refused the whole
    smpp.toml (`config check`, serve's start, a reload) as "smpp.toml: FileNotFoundError: ... server.key"."""
    import engine.smpp_proxy.tls as T
    _server(cfg, 'tls_listen = "0.0.0.0:3550"\ntls_cert = "server.pem"\ntls_key = "server.key"\n')
    loaded = T.server_context

    def then_moved(cert, key, *a):
        ctx = loaded(cert, key, *a)
        os.rename(key, key + ".old")
        return ctx
    monkeypatch.setattr(T, "server_context", then_moved)
    monkeypatch.setenv("TELFILTER_ESME_ACCOUNTS", "esme1:pw")
    c = load_config(cfg)
    assert c.errors == []
