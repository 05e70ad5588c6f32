"""The suite's PNGs show what they plot. lists_scaling.png: the legend sat in the upper left corner, where the Python
set baseline's point is (fewest numbers, most MB), and hid it; its lookup cost was not drawn. sip_cps.png with one
rate (every --quick run): the 'offered' reference, a dotted line of one point, was not drawn at all, and the y axis
ran 486-500, so a 0.3% gap between the screen and Kamailio filled the plot. The figures are read back from the
report's own drawing code with figures from a quick run; nothing is measured here."""
import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from benchmarks.report import _plots  # noqa: E402

LISTS = {"roaring": [{"n": 1_000_000, "rss_mb": 4.2, "snapshot_mb": 3.0, "lookup_us": 0.30},
                     {"n": 10_000_000, "rss_mb": 29.9, "snapshot_mb": 28.7, "lookup_us": 1.73}],
         "python_set": [{"n": 1_000_000, "rss_mb": 68.6, "build_s": 0.44, "lookup_us": 1.41}]}
SIP = {"steps": [{"offered_cps": 500, "mixed": {"cps": 486.5}, "allowed": {"cps": 487.2, "cpu_us_per_call": 273.2},
                  "relay": {"cpu_us_per_call": 57.9}, "kamailio": {"cps": 487.7, "cpu_us_per_call": 51.7}}]}


def _figures(tmp_path, monkeypatch, res) -> dict:
    figs, save = {}, Figure.savefig

    def keep(fig, path, *a, **kw):
        save(fig, path, *a, **kw)
        figs[str(path).rsplit("/", 1)[-1]] = fig
    monkeypatch.setattr(Figure, "savefig", keep)
    _plots(tmp_path, res)
    return figs


def test_the_lists_legend_leaves_the_python_set_baseline_visible(tmp_path, monkeypatch):
    fig = _figures(tmp_path, monkeypatch, {"lists": LISTS})["lists_scaling.png"]
    canvas = FigureCanvasAgg(fig)          # (the report closed the figure: a canvas to lay it out again)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [lg for ax in fig.axes if (lg := ax.get_legend())]
    labels = [t.get_text() for lg in legends for t in lg.get_texts()]
    assert any("Python set" in t and "lookup" in t for t in labels), labels
    for ax in fig.axes:
        for line in ax.get_lines():
            if "Python set" not in line.get_label():
                continue
            for x, y in line.get_xydata():
                px, py = ax.transData.transform((x, y))
                for lg in legends:
                    assert not lg.get_window_extent(renderer).contains(px, py), (line.get_label(), x, y)


def test_one_sip_rate_still_shows_the_offered_load_and_a_scale_from_zero(tmp_path, monkeypatch):
    fig = _figures(tmp_path, monkeypatch, {"sip": SIP})["sip_cps.png"]
    ax = fig.axes[0]
    offered = [ln for ln in ax.get_lines() if ln.get_label() == "offered"][0]
    assert len(offered.get_xdata()) > 1 or offered.get_marker() not in (None, "None", "", " "), offered.get_marker()
    lo, hi = ax.get_ylim()
    assert lo == 0 and hi >= 500, (lo, hi)
