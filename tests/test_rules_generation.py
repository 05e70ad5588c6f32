"""The rule set's generation is the pipeline's (one count of rule sets swapped in): `ctl stats` and /metrics
show the same number (each used to keep its own count of the changes it happened to notice: 0 against 1 at
start, and two reloads between two looks counted once)."""
import shutil

from engine.app import build
from engine.config import load_settings
from engine.control import ControlServer
from engine.lists import Lists
from engine.pipeline import Pipeline
from engine.rules.loader import load_rules

from .conftest import CONFIG


def _scrape(m) -> dict:
    """{sample name: [(labels, value)]} of one collection of `m`'s registry."""
    out: dict = {}
    for fam in m.registry.collect():
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_ctl_stats_and_metrics_show_one_generation(tmp_path):
    from engine.metrics import Metrics
    pipe = build(data_dir=tmp_path / "data", with_model=False)
    ctl = ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)
    m = Metrics(pipe)

    def metrics_gen():
        return int(_scrape(m)["telfilter_rules_generation"][0][1])
    assert ctl.stats()["rules"]["generation"] == metrics_gen() == 1
    assert pipe.reload_rules() == [] and pipe.reload_rules() == []
    assert ctl.stats()["rules"]["generation"] == metrics_gen() == 3


def test_a_reload_keeps_the_rules_info_series(tmp_path):
    """telfilter_rules_info carried the generation (and the rule count) as labels: each reload made a new series
    and the old one vanished from the scrape (an info metric's labels should be stable). They are gauges of their
    own now; the info keeps the directory."""
    from engine.metrics import Metrics
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    pipe = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    m = Metrics(pipe)
    before = _scrape(m)
    n = len(pipe.rules.rules)
    with open(d / "50-extra.toml", "w") as f:
        f.write('[[rule]]\nsymbol = "__EXTRA"\n[rule.when]\nexpr = "__IS_AD"\n')
    assert pipe.reload_rules() == [] and len(pipe.rules.rules) == n + 1
    after = _scrape(m)
    assert before["telfilter_rules_info"] == after["telfilter_rules_info"] == [({"directory": str(d)}, 1.0)]
    assert before["telfilter_rules_generation"] == [({}, 1.0)] and after["telfilter_rules_generation"] == [({}, 2.0)]
    assert before["telfilter_rules_loaded"] == [({}, n)] and after["telfilter_rules_loaded"] == [({}, n + 1)]
