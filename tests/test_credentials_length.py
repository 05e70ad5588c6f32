"""SMPP 3.4 §5.2.2: a bind's password is at most 8 characters. A longer ESME or SMSC password given to serve
could never bind (every ESME bind failed ESME_RINVPASWD with nothing in the log): refused at start, without
echoing the password."""
import os
import subprocess
import sys
from types import SimpleNamespace

from engine.credentials import esme_accounts, smsc_password


def _args(**kw):
    d = dict(smsc_password=None, smsc_password_file=None, esme_account=[], esme_accounts_file=None)
    d.update(kw)
    return SimpleNamespace(**d)


def test_esme_passwords_over_8_characters_are_refused_unechoed(tmp_path, monkeypatch):
    f = tmp_path / "accounts"
    f.write_text("esme2:anotherlongpw\nesme3:short\n")
    monkeypatch.setenv("TELFILTER_ESME_ACCOUNTS", "esme4:yetanotherlongpw esme5:okpw")
    errors = []
    got = esme_accounts(_args(esme_account=["esme1:longpassword123", "esme6:12345678"], esme_accounts_file=str(f)),
                        errors, warn=False)
    assert sorted(a.system_id for a in got) == ["esme3", "esme5", "esme6"]
    assert len(errors) == 3, errors
    assert any("esme1" in e and "over SMPP 3.4's 8" in e for e in errors)
    assert any(e.startswith(f"{f}:1:") for e in errors)
    assert not any(p in e for e in errors for p in ("longpassword123", "anotherlongpw", "yetanotherlongpw"))


def test_an_smsc_password_over_8_characters_is_refused(tmp_path, monkeypatch):
    errors = []
    assert smsc_password(_args(smsc_password="waytoolongpw"), errors) is None
    assert errors and "over SMPP 3.4's 8" in errors[0] and "waytoolongpw" not in errors[0]
    f = tmp_path / "pw"
    f.write_text("\nalsotoolongpw\n")
    errors = []
    assert smsc_password(_args(smsc_password_file=str(f)), errors) is None
    assert errors[0].startswith(f"{f}:2:")
    monkeypatch.setenv("TELFILTER_SMSC_PASSWORD", "envtoolongpw")
    errors = []
    assert smsc_password(_args(), errors) is None and "TELFILTER_SMSC_PASSWORD" in errors[0]
    monkeypatch.setenv("TELFILTER_SMSC_PASSWORD", "8chars!!")
    errors = []
    assert smsc_password(_args(), errors) == "8chars!!" and errors == []


def test_the_hash_tool_refuses_a_password_no_bind_can_carry():
    r = subprocess.run([sys.executable, "-m", "engine.smpp_proxy.accounts", "longpassword123"], capture_output=True,
                       text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 2 and "over SMPP 3.4's 8" in r.stderr and r.stdout == ""


def test_the_length_is_in_wire_octets(monkeypatch):
    """The codec writes a password in Latin-1, one octet a character: pässwör1 (8 octets) binds; mật1 has a
    character no C-Octet String carries."""
    errors = []
    got = esme_accounts(_args(esme_account=["a:pässwör1", "b:mật1"]), errors, warn=False)
    assert [a.system_id for a in got] == ["a"]
    assert len(errors) == 1 and "'b'" in errors[0] and "outside Latin-1" in errors[0] and "mật1" not in errors[0]
