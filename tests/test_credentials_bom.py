"""Secrets files and accounts written on Windows: a UTF-8 BOM (Notepad's "UTF-8") and CRLF line ends.

The BOM was read as part of the first line, so the first account of an --esme-accounts-file became system_id
'\\ufeffesme1': serve started without a word and every bind as esme1 was refused; an --smsc-password-file with a
BOM was refused as "characters outside Latin-1". A system_id no bind can carry (outside Latin-1, as the BOM is)
is now refused at its line, from the file, argv or smpp.toml."""
from types import SimpleNamespace

from engine.credentials import esme_accounts, smsc_password
from engine.smpp_proxy.accounts import verify_password

from .conftest import CONFIG, run_cli


def _args(**kw):
    d = dict(smsc_password=None, smsc_password_file=None, esme_account=[], esme_accounts_file=None)
    d.update(kw)
    return SimpleNamespace(**d)


def test_an_accounts_file_with_a_bom_and_crlf_gives_the_accounts_as_written(tmp_path):
    f = tmp_path / "accounts"
    f.write_bytes(b"\xef\xbb\xbfesme1:secret\r\n# a comment\r\nesme2:pw2\r\n")
    f.chmod(0o600)
    errors = []
    got = esme_accounts(_args(esme_accounts_file=str(f)), errors, warn=False)
    assert errors == []
    assert [a.system_id for a in got] == ["esme1", "esme2"]
    assert verify_password("secret", got[0].password_hash) and verify_password("pw2", got[1].password_hash)


def test_an_smsc_password_file_with_a_bom_and_crlf(tmp_path):
    f = tmp_path / "pw"
    f.write_bytes(b"\xef\xbb\xbfpw\r\n")
    f.chmod(0o600)
    errors = []
    assert smsc_password(_args(smsc_password_file=str(f)), errors) == "pw" and errors == []


def test_a_system_id_no_bind_can_carry_is_refused_at_its_line(tmp_path):
    errors = []
    f = tmp_path / "accounts"
    f.write_text("ok1:pw\nĐại:pw\n")
    f.chmod(0o600)
    got = esme_accounts(_args(esme_accounts_file=str(f), esme_account=["mật:pw"]), errors, warn=False)
    assert [a.system_id for a in got] == ["ok1"]
    assert any(e.startswith(f"{f}:2:") for e in errors), errors
    assert any("'mật'" in e and "outside Latin-1" in e for e in errors), errors
    cfg = tmp_path / "config"
    cfg.mkdir()
    for name in ("telfilter.toml", "sip.toml"):
        (cfg / name).write_text((CONFIG / name).read_text())
    (cfg / "rules").symlink_to(CONFIG / "rules")
    (cfg / "smpp.toml").write_text('[[account]]\nsystem_id = "Đại"\npassword_hash = "pbkdf2_sha256$1000$00$00"\n')
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and "smpp.toml:2:1: account #1 'Đại': system_id has characters outside Latin-1" in r.stderr, \
        r.stderr


def test_a_secrets_file_that_is_not_utf8_is_refused_at_its_line_without_the_bytes(tmp_path):
    """An ops probe: a Latin-1 accounts file (é in a password on line 2) stopped serve and `ctl reload accounts`
    with "FILE: 'utf-8' codec can't decode byte 0xe9 in position 19: invalid continuation byte": no line, and a
    byte of the password. Now FILE:LINE: not UTF-8 text, as the config files say it."""
    f = tmp_path / "accounts"
    f.write_bytes(b"esme1:secret\nesme2:secr\xe9t\n")
    f.chmod(0o600)
    errors = []
    assert esme_accounts(_args(esme_accounts_file=str(f)), errors, warn=False) == []
    assert errors == [f"{f}:2: not UTF-8 text"]
    p = tmp_path / "pw"
    p.write_bytes(b"\xff\xfep\x00w\x00\n\x00")
    p.chmod(0o600)
    errors = []
    assert smsc_password(_args(smsc_password_file=str(p)), errors) is None
    assert errors == [f"{p}:1: not UTF-8 text"]
