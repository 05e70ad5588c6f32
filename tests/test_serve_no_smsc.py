"""serve with no SMSC at all (smpp.toml [upstream] smsc = [] and no --smsc): found by an ops probe. ESMEs bound,
every submit_sm was answered ESME_RTHROTTLED, /healthz said 200 (it speaks of configured SMSCs only) and the
only word was "upstream none" at INFO. A start without an SMSC now says so at WARNING, as one without ESME
accounts does."""
import logging
import shutil

from engine.cli import parser

from .conftest import CONFIG


def _args(cfg, tmp_path, *flags):
    return parser().parse_args(["serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--smpp-listen",
                                "127.0.0.1:0", "--sip-listen", "off", "--esme-account", "e1:pw", *flags])


def test_a_start_with_no_smsc_is_warned(tmp_path, caplog):
    from engine.serve import load_serve_config
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    smpp = cfg / "smpp.toml"
    text = smpp.read_text()
    assert 'smsc = ["127.0.0.1:2776"]' in text
    smpp.write_text(text.replace('smsc = ["127.0.0.1:2776"]', "smsc = []"))
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        load_serve_config(_args(cfg, tmp_path))
    said = [r.getMessage() for r in caplog.records if "no SMSC" in r.getMessage()]
    assert said and "ESME_RTHROTTLED" in said[0], caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        load_serve_config(_args(cfg, tmp_path, "--smsc", "127.0.0.1:9"))
    assert not [r for r in caplog.records if "no SMSC" in r.getMessage()]
