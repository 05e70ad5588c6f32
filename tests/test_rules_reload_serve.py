"""Rules reloads of a running serve. `ctl reload rules` says the new set's warnings, as `rules check` does.

A rules reload is checked against smpp.toml `[drop] silent_symbols` as serve's start is: a reload that renamed a
rule named there was put in force, and its drops were answered with their error status from then on (the silence
lost without a word; at start the same set is an error). Now it is refused, naming smpp.toml's line, and the old
rules stay. Runs a real serve on 127.0.0.1 with the SMSC simulator; both are stopped."""
import json
import shutil

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import CONFIG
from .test_control import _stop, ctl
from .test_ctl_reload import _serve
from .test_serve import wait_for


def test_a_reload_renaming_a_silent_symbol_is_refused(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    smpp = (cfg / "smpp.toml").read_text()
    assert "silent_symbols = []" in smpp
    (cfg / "smpp.toml").write_text(smpp.replace("silent_symbols = []", 'silent_symbols = ["AD_TO_DNC"]'))
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, _, _ = _serve(tmp_path, cfg, sim.port)
    try:
        f = cfg / "rules" / "20-advertising-sms.toml"
        f.write_text(f.read_text().replace('symbol = "AD_TO_DNC"', 'symbol = "AD_TO_DNC_S"'))
        r = ctl(tmp_path, "reload", "rules")
        assert r.returncode == 1, r.stdout + r.stderr
        ans = json.loads(r.stdout)["rules"]
        assert ans["ok"] is False and ans["generation"] == 1, ans
        assert any("smpp.toml:" in e and "silent_symbols: 'AD_TO_DNC' is no rule's symbol" in e for e in ans["errors"])
        assert wait_for(lambda: "rules reload refused, old rules stay in force: " in (tmp_path / "stderr.log").read_text())
        # named back: in force
        f.write_text(f.read_text().replace('symbol = "AD_TO_DNC_S"', 'symbol = "AD_TO_DNC"'))
        r = ctl(tmp_path, "reload", "rules")
        assert r.returncode == 0 and json.loads(r.stdout)["rules"]["ok"] is True, r.stdout + r.stderr
    finally:
        _stop(p)
        sim.stop()


def test_ctl_reload_rules_says_the_new_sets_warnings(tmp_path):
    # they went to serve's log only: `ctl reload rules` answered ok with nothing of them
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    p, _, _ = _serve(tmp_path, cfg, sim.port)
    try:
        r = ctl(tmp_path, "reload", "rules")
        assert r.returncode == 0 and "warnings" not in json.loads(r.stdout)["rules"], r.stdout
        (cfg / "rules" / "60-empty.toml").write_text("# to be written\n")
        r = ctl(tmp_path, "reload", "rules")
        ans = json.loads(r.stdout)["rules"]
        assert r.returncode == 0 and ans["ok"] is True, r.stdout + r.stderr
        assert ans["warnings"] == [f"{cfg / 'rules' / '60-empty.toml'}:1:1: warning: the file holds no [[rule]], "
                                   "[actions] or [fixtures]: it takes no effect"], ans
    finally:
        _stop(p)
        sim.stop()
