"""`ml compare --report`'s per-language bars are rates: their axes start at 0. A comparison where no model blocks any
ham (the hoped-for case) drew its "ham blocked" axis from -0.04 to 0.04, a negative rate for the analyst to puzzle over."""
import numpy as np
from matplotlib.figure import Figure

from engine.analyst.compare import plots


def test_the_rate_axes_start_at_zero_when_no_ham_is_blocked(tmp_path, monkeypatch):
    seen = []
    save = Figure.savefig

    def record(fig, path, *a, **k):
        seen.append((str(path), [ax.get_ylim() for ax in fig.axes]))
        return save(fig, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", record)
    rates = {"en": {"spam_caught_rate": 1.0, "blocked_ham_rate": 0.0},
             "vi": {"spam_caught_rate": 0.9, "blocked_ham_rate": 0.0}}
    models = [{"model_version": f"m{i}", "drop_threshold": .9, "by_language": rates} for i in (1, 2)]
    P = [np.array([.1, .95, .2, .99])] * 2
    plots(tmp_path, {"models": models}, P, [0, 1, 0, 1], ["en", "en", "vi", "vi"], ["m1", "m2"])
    bars = dict(seen)[str(tmp_path / "per_language.png")]
    assert [lo for lo, _ in bars] == [0, 0]
    assert all(hi > 0 for _, hi in bars)
