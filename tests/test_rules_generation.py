"""The rule set's generation is the pipeline's (one count of rule sets swapped in): `ctl stats` and /metrics
show the same number (each used to keep its own count of the changes it happened to notice: 0 against 1 at
start, and two reloads between two looks counted once)."""
from engine.app import build
from engine.control import ControlServer


def test_ctl_stats_and_metrics_show_one_generation(tmp_path):
    from engine.metrics import Metrics
    pipe = build(data_dir=tmp_path / "data", with_model=False)
    ctl = ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)
    m = Metrics(pipe)

    def metrics_gen():
        for fam in m.registry.collect():
            for s in fam.samples:
                if s.name == "telfilter_rules_info":
                    return int(s.labels["generation"])
    assert ctl.stats()["rules"]["generation"] == metrics_gen() == 1
    assert pipe.reload_rules() == [] and pipe.reload_rules() == []
    assert ctl.stats()["rules"]["generation"] == metrics_gen() == 3
