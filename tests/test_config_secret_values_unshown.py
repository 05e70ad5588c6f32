"""A config value of the wrong type is named in the error (`must be a string, got 30`), except a password's: an SMSC
password written unquoted (`password = 20261207`, TOML's integer) was printed whole by `config check` and serve's
start, i.e. into the journal of every host that ran it (found by the security review, stop 68)."""
import shutil

from .conftest import CONFIG, run_cli


def test_a_password_of_the_wrong_type_is_not_echoed(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    smpp = cfg / "smpp.toml"
    text = smpp.read_text()
    assert '\npassword = "tfsecret"' in text
    for value in ("20261207", '["Pw1sEcr"]', "{ v = \"Pw1sEcr\" }"):
        smpp.write_text(text.replace('\npassword = "tfsecret"', f"\npassword = {value}"))
        r = run_cli("config", "check", cfg, env={"TELFILTER_ESME_ACCOUNTS": "e:pw"})
        assert r.returncode == 2 and "[upstream] password must be a string, got " in r.stderr, r.stderr
        assert "20261207" not in r.stderr and "Pw1sEcr" not in r.stderr, r.stderr
    smpp.write_text(text.replace("\nwindow = 200", '\nwindow = "20"'))     # other keys' values are still shown
    r = run_cli("config", "check", cfg, env={"TELFILTER_ESME_ACCOUNTS": "e:pw"})
    assert "[upstream] window must be an integer, got '20'" in r.stderr, r.stderr
