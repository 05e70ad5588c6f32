"""report.md explains the traffic classes of each mix table it prints. The pipeline stage judges benchmarks.traffic's
mix (p2p, p2p_ucs2, ad, ad_dnc, cskh, campaign, phish) but its table was headed "(benchmarks.gen)" and explained
gen's classes instead (spam, mo, ucs2_long), none of which were in it. Nothing is measured here."""
from benchmarks.__main__ import summarise
from benchmarks.capacity import capacity
from benchmarks.report import write_report
from benchmarks.traffic import SHARES


def _pipeline_section(tmp_path, monkeypatch) -> str:
    monkeypatch.setattr("benchmarks.report._plots", lambda out, res: [])
    stage = {"p50": 1.0, "p99": 2.0, "p99.9": 3.0, "mean": 1.5}
    res = {"mode": "quick", "started": "20261201T000000Z", "duration_s": 1.0, "step_seconds": {},
           "machine": {"cores": 2, "cpu_model": "x", "python": "3.11", "platform": "linux"},
           "pipeline": {"n": 100, "dnc_size": 1000, "msgs_per_s": 1000.0, "ml_us_per_msg_160": 10.0,
                        "ml_sklearn_us_per_msg": 800.0, "mix_shares": dict(SHARES),
                        "verdicts_by_mix": {k: {"allow": 1} for k in SHARES},
                        "stages_us": {k: stage for k in ("normalise", "lists", "rules", "ml", "judge")}}}
    res["summary"], res["capacity"] = summarise(res), capacity(res)
    write_report(tmp_path, res)
    text = (tmp_path / "report.md").read_text()
    return text.split("## 1. Pipeline in process", 1)[1].split("\n## ", 1)[0]


def test_the_pipeline_mix_legend_explains_the_classes_in_its_table(tmp_path, monkeypatch):
    section = _pipeline_section(tmp_path, monkeypatch)
    rows = [ln.split("|")[1].strip() for ln in section.splitlines() if ln.startswith("| ") and ln.count("|") == 4]
    assert sorted(rows[1:]) == sorted(SHARES), rows        # (the header row first)
    legend = section.rsplit("\n\n", 1)[1]
    for k in SHARES:
        assert f"{k} = " in legend, (k, legend)
    for gone in ("spam = ", "mo = ", "ucs2_long = "):
        assert gone not in legend, (gone, legend)
    assert "benchmarks.gen" not in section
