"""`config check --strict` exits 1 on warnings (README, CLI), the secrets files' too: a --esme-accounts-file or
--smsc-password-file that other users can read was warned about (`chmod 600 it`) but not counted, so `--strict`
passed it with exit 0 while it failed on every other warning (found by the README audit, stop 49)."""
from .conftest import run_cli


# an account besides the file's: the shipped smpp.toml has none, and no account at all is a warning too
ACCOUNT = {"TELFILTER_ESME_ACCOUNTS": "other:pw"}


def test_a_secrets_file_others_can_read_is_a_counted_warning(tmp_path):
    acc, pw = tmp_path / "esme.accounts", tmp_path / "smsc.password"
    acc.write_text("esme1:pw1\n")
    pw.write_text("upstream\n")
    for flag, f in (("--esme-accounts-file", acc), ("--smsc-password-file", pw)):
        f.chmod(0o644)
        r = run_cli("config", "check", flag, f, env=ACCOUNT)
        assert r.returncode == 0, r.stderr
        assert f"{f} can be read by other users (mode 644): chmod 600 it" in r.stderr
        assert "telfilter config check: 1 warning(s)" in r.stderr, r.stderr
        r = run_cli("config", "check", "--strict", flag, f, env=ACCOUNT)
        assert r.returncode == 1, r.stderr
        f.chmod(0o600)
        r = run_cli("config", "check", "--strict", flag, f, env=ACCOUNT)
        assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_no_esme_account_anywhere_is_the_warning_serve_starts_with(tmp_path):
    """serve warns at start when no source gives an ESME account (every bind refused); `config check` said nothing
    and `--strict` passed it with exit 0. Counted now, as serve's other start warnings; an account from any source
    serve reads (smpp.toml, --esme-accounts-file, $TELFILTER_ESME_ACCOUNTS) is enough."""
    r = run_cli("config", "check", "--strict", env={"TELFILTER_ESME_ACCOUNTS": ""})
    assert r.returncode == 1 and "no ESME accounts (smpp.toml [[account]], --esme-accounts-file" in r.stderr, r.stderr
    assert run_cli("config", "check", env={"TELFILTER_ESME_ACCOUNTS": ""}).returncode == 0
    acc = tmp_path / "esme.accounts"
    acc.write_text("esme1:pw1\n")
    acc.chmod(0o600)
    r = run_cli("config", "check", "--strict", "--esme-accounts-file", acc, env={"TELFILTER_ESME_ACCOUNTS": ""})
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert run_cli("config", "check", "--strict", env=ACCOUNT).returncode == 0


def test_no_account_is_not_said_beside_an_error_as_serve_does_not():
    r = run_cli("config", "check", "--state", "redis://127.0.0.1:9/99999999999", env={"TELFILTER_ESME_ACCOUNTS": ""})
    assert r.returncode == 2 and "the database is a number below" in r.stderr
    assert "no ESME accounts" not in r.stderr, r.stderr
