"""An --esme-accounts-file line is `SYSTEM_ID:PASSWORD` then optionally tls_client_subject=/tls_client_sha256=
(README "Secrets"). Any other `NAME=` after whitespace is an unknown key, refused at file:line naming it:
`esme5:pw bogus=1` was refused as "a password of at most 8 characters", and `e:p x=1` silently bound with the
password "p x=1"."""
from types import SimpleNamespace

from engine.credentials import esme_accounts


def _accounts(tmp_path, monkeypatch, text):
    monkeypatch.delenv("TELFILTER_ESME_ACCOUNTS", raising=False)
    f = tmp_path / "esme.accounts"
    f.write_text(text)
    f.chmod(0o600)
    errors: list = []
    got = esme_accounts(SimpleNamespace(esme_account=[], esme_accounts_file=str(f)), errors, warn=False)
    return f, [a.system_id for a in got], errors


def test_an_unknown_key_is_named_at_its_line(tmp_path, monkeypatch):
    f, got, errors = _accounts(tmp_path, monkeypatch, "ok:pw\nesme5:pw bogus=1\ne:p x=1\n")
    assert got == ["ok"]
    assert errors == [f"{f}:2: account 'esme5': unknown key 'bogus' (after the password: tls_client_subject "
                      "and/or tls_client_sha256)",
                      f"{f}:3: account 'e': unknown key 'x' (after the password: tls_client_subject "
                      "and/or tls_client_sha256)"]


def test_a_misspelt_tls_key_is_named_with_the_right_one(tmp_path, monkeypatch):
    f, got, errors = _accounts(tmp_path, monkeypatch, "e1:pw tls_clent_subject=CN=e1\n"
                               "e2:pw tls_client_subject=CN=e2 tls_client_sha265=AB\n")
    assert got == []
    assert errors == [f"{f}:1: account 'e1': unknown key 'tls_clent_subject' (did you mean 'tls_client_subject'?)",
                      f"{f}:2: account 'e2': unknown key 'tls_client_sha265' (did you mean 'tls_client_sha256'?)"]


def test_passwords_with_spaces_or_equals_and_subjects_with_spaces_still_read(tmp_path, monkeypatch):
    f, got, errors = _accounts(tmp_path, monkeypatch, "a:p w\nb:x=1 \nc:a=b c\n"
                               "d:pw tls_client_subject=CN=d, O=Acme\n")
    assert errors == [] and got == ["a", "b", "c", "d"]
