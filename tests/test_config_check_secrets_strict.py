"""`config check --strict` exits 1 on warnings (README, CLI), the secrets files' too: a --esme-accounts-file or
--smsc-password-file that other users can read was warned about (`chmod 600 it`) but not counted, so `--strict`
passed it with exit 0 while it failed on every other warning (found by the README audit, stop 49)."""
from .conftest import run_cli


def test_a_secrets_file_others_can_read_is_a_counted_warning(tmp_path):
    acc, pw = tmp_path / "esme.accounts", tmp_path / "smsc.password"
    acc.write_text("esme1:pw1\n")
    pw.write_text("upstream\n")
    for flag, f in (("--esme-accounts-file", acc), ("--smsc-password-file", pw)):
        f.chmod(0o644)
        r = run_cli("config", "check", flag, f)
        assert r.returncode == 0, r.stderr
        assert f"{f} can be read by other users (mode 644): chmod 600 it" in r.stderr
        assert "telfilter config check: 1 warning(s)" in r.stderr, r.stderr
        r = run_cli("config", "check", "--strict", flag, f)
        assert r.returncode == 1, r.stderr
        f.chmod(0o600)
        r = run_cli("config", "check", "--strict", flag, f)
        assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
