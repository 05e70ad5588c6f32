"""A metric with nothing to count is null in `ml eval`'s JSON, as `roc_auc` already was and as summary.md shows a
dash: no ham, `mcc` and `blocked_ham_rate` (they read 0.0: "blocks no ham", of data with none); no spam, `recall`,
`spam_caught_rate`, `f1`. The consumers of these keys (`ml cv`'s summary and table, `ml compare`'s plots, the
promote gate, eval's report) take the nulls without a crash."""
import json

import numpy as np

from engine.analyst.gate import gate
from engine.ml.cv import _stats, table
from engine.ml.thresholds import metrics

from .conftest import ROOT, run_cli


def test_eval_of_spam_only_data_gives_nulls_and_dashes_alike(tmp_path):
    spam = tmp_path / "spam.tsv"
    spam.write_text("label\ttext\nspam\tWINNER!! claim your £1000 prize now, call 09061701461\n"
                    "spam\tTrung thuong 100 trieu, bam link http://nhanqua.vn de nhan ngay\n")
    r = run_cli("ml", "eval", "--model", ROOT / "engine/ml/default_model", "--data", spam, "--report", tmp_path / "rep",
                check=True)
    m = json.loads(r.stdout)
    assert (m["mcc"], m["blocked_ham_rate"], m["roc_auc"]) == (None, None, None)
    assert isinstance(m["recall"], float) and isinstance(m["f1"], float)
    assert all(g["blocked_ham_rate"] is None and g["mcc"] is None for g in m["by_language"].values())
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "| MCC | — |" in md and "| blocked ham rate | — |" in md
    assert (tmp_path / "rep" / "per_language.png").exists()


def test_metrics_null_exactly_what_has_nothing_to_count():
    ham_only = metrics(np.array([0.1, 0.9]), np.array([False, False]), 0.5)
    assert [ham_only[k] for k in ("recall", "spam_caught_rate", "f1", "mcc", "roc_auc")] == [None] * 5
    assert ham_only["blocked_ham_rate"] == 0.5 and ham_only["precision"] == 0.0
    none_dropped = metrics(np.array([0.1, 0.2]), np.array([True, False]), 0.5)
    assert none_dropped["precision"] is None and none_dropped["recall"] == 0.0 and none_dropped["f1"] == 0.0


def test_cv_summary_and_table_and_the_gate_take_nulls():
    row = lambda mcc, caught, blocked, spam, ham: {"mcc": mcc, "spam_caught_rate": caught, "blocked_ham_rate": blocked,
                                                   "false_blocks": 0, "misses": 0, "spam": spam, "ham": ham}
    s = _stats([row(None, 1.0, None, 6, 0), row(0.5, 0.5, 0.0, 6, 6)])
    assert s["mcc"] == {"mean": 0.5, "worst": 0.5} and s["blocked_ham_rate"] == {"mean": 0.0, "worst": 0.0}
    only_spam = _stats([row(None, 1.0, None, 12, 0)])
    assert only_spam["blocked_ham_rate"] == {"mean": None, "worst": None} and only_spam["pooled"]["blocked_ham_rate"] is None
    text = table({"summary": {"a.tsv": dict(only_spam, by_language={})}})
    assert "—" in text.splitlines()[1]
    lang = {"confusion": {"fp": 0}, "ham": 5, "spam": 0, "spam_caught_rate": None}
    g = gate({"models": [{"by_language": {"en": lang}}, {"by_language": {"en": lang}}]})
    assert g["passed"] and g["by_language"]["en"]["spam_caught_rate"] == [None, None]


def test_eval_report_of_a_threshold_dropping_nothing_writes_its_plots_without_a_warning(tmp_path):
    """Both classes, none at or over the drop threshold: precision is null, the precision-recall plot has no point
    for the threshold, and no legend to draw (matplotlib's "No artists with labels found" on ml eval's stderr)."""
    import warnings
    from types import SimpleNamespace

    from engine.ml.cli import write_report
    from engine.ml.thresholds import breakdown
    p, y = np.array([0.1, 0.2, 0.3, 0.05]), np.array([True, False, True, False])
    m = metrics(p, y, 0.9)
    m["by_language"] = breakdown(p, y, 0.9, ["vi"] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report(tmp_path, p, y, m, SimpleNamespace(drop_threshold=0.9, tag_threshold=0.5, version="v1"))
    assert m["precision"] is None and (tmp_path / "precision_recall.png").exists()
    assert "| precision | — |" in (tmp_path / "summary.md").read_text()
