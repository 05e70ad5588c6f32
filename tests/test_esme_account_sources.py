"""ESME accounts named in more than one place (found by an ops probe).

An account in smpp.toml's [[account]] tables and again in --esme-accounts-file (or on argv, or in
$TELFILTER_ESME_ACCOUNTS) is the file's, as it always was, but it replaced the table without a word: the
table's allowed_networks, throughput and password were out of force (a bind from a network the table did not
allow was taken) and nothing said so. It is now a warning naming both places. The same account twice in the
accounts file (the second line silently won) is an error at its line, as a [[account]] defined twice is."""
import logging
import shutil
from types import SimpleNamespace

from engine.cli import parser
from engine.credentials import esme_accounts
from engine.smpp_proxy.accounts import hash_password

from .conftest import CONFIG


def test_an_account_twice_in_the_accounts_file_is_an_error_at_its_line(tmp_path):
    f = tmp_path / "accounts"
    f.write_text("esme1:pw1\nesme2:pw2\nesme1:pw3\n")
    f.chmod(0o600)
    errors = []
    args = SimpleNamespace(esme_account=[], esme_accounts_file=str(f))
    esme_accounts(args, errors, warn=False)
    assert errors == [f"{f}:3: account 'esme1' given twice (first at {f}:1)"]


def test_a_file_account_replacing_an_smpp_toml_account_is_said(tmp_path, caplog):
    from engine.serve import load_serve_config
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    smpp = cfg / "smpp.toml"
    smpp.write_text(smpp.read_text() + f'\n[[account]]\nsystem_id = "esme2"\npassword_hash = '
                    f'"{hash_password("pw", iterations=1000)}"\nallowed_networks = ["10.0.0.0/8"]\n')
    line = len(smpp.read_text().splitlines()) - 3
    f = tmp_path / "accounts"
    f.write_text("esme1:pw1\nesme2:pw2\n")
    f.chmod(0o600)
    args = parser().parse_args(["serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--smpp-listen",
                                "127.0.0.1:0", "--sip-listen", "off", "--esme-accounts-file", str(f)])
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        _, settings = load_serve_config(args)
    acc = settings.accounts["esme2"]
    assert acc.origin == f"{f}:2"                     # the file wins, as before
    said = [r.getMessage() for r in caplog.records if "esme2" in r.getMessage()]
    assert said and f"{f}:2" in said[0] and f"{smpp}:{line}" in said[0], caplog.text
    assert "allowed_networks" in said[0]
