"""`telfilter_reloads_total{part, result}` and `ctl stats`' `reloads`: every reload of rules, lists, model, accounts and
sip counted, put in force (ok) or refused (the old version kept). Found by the ops walkthrough: only rules and lists
had a metric, so a refused model, accounts or sip.toml reload (SIGUSR1 after a bad `[ml]` edit, `ctl reload sip`)
was in the service log alone, nothing a NOC could alert on."""
import asyncio
import shutil
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.app import build
from engine.control_reload import ReloadCommands
from engine.metrics import Metrics
from engine.reload_counts import PARTS, reload_counts
from engine.serve_reload import _reload_model, reload_lists

from .conftest import CONFIG


def _counts(pipe) -> dict:
    text = generate_latest(Metrics(pipe).registry).decode()
    return {(s.labels["part"], s.labels["result"]): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == "telfilter_reloads_total"}


def test_every_part_is_exported_before_its_first_reload(tmp_path):
    pipe = build(data_dir=tmp_path, with_model=False, persist=False, seed=False)
    assert _counts(pipe) == {(p, r): 0 for p in PARTS for r in ("ok", "refused")}


def test_refused_and_good_reloads_are_counted_by_part(tmp_path):
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIG, cfg)
    pipe = build(config_dir=cfg, data_dir=tmp_path / "data", with_model=False, persist=False, seed=False)
    ctl = ReloadCommands()
    ctl.pipe, ctl.args, ctl.sip = pipe, None, None
    ctl.proxy = SimpleNamespace(accounts={})

    bad_rule = cfg / "rules" / "99-bad.toml"
    bad_rule.write_text('[[rule]]\nsymbol = "X"\nno_such_condition = 1\n', encoding="utf-8")
    assert pipe.reload_rules(cfg / "rules")                              # refused: errors
    bad_rule.unlink()
    assert pipe.reload_rules(cfg / "rules") == []

    toml = (cfg / "telfilter.toml").read_text(encoding="utf-8")
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', 'model = "no-such-model"'), encoding="utf-8")
    assert asyncio.run(_reload_model(pipe)) is not None                  # refused: no card.json there
    (cfg / "telfilter.toml").write_text(toml, encoding="utf-8")
    assert asyncio.run(_reload_model(pipe)) is None                      # the bundled model
    assert asyncio.run(reload_lists(pipe)) is None

    smpp = (cfg / "smpp.toml").read_text(encoding="utf-8")
    (cfg / "smpp.toml").write_text(smpp + "\nno_such_key = 1\n", encoding="utf-8")
    assert asyncio.run(ctl._reload_accounts())["ok"] is False
    (cfg / "sip.toml").write_text("this is not toml\n", encoding="utf-8")
    assert asyncio.run(ctl._reload_sip())["ok"] is False

    got = _counts(pipe)
    assert {k: v for k, v in got.items() if v} == {("rules", "refused"): 1, ("rules", "ok"): 1,
                                                   ("model", "refused"): 1, ("model", "ok"): 1, ("lists", "ok"): 1,
                                                   ("accounts", "refused"): 1,
                                                   ("sip", "refused"): 1}
    assert reload_counts(pipe)["model"] == {"ok": 1, "refused": 1}      # what `ctl stats` shows as `reloads`
