"""`ml train`'s progress bar on a terminal is honest about the fits. It counted messages and model fits alike as
one bar (4,741 steps on the shipped data, 4,729 of them the features' messages): it was at 99% once the features
were made, a tenth of the run, and stayed there for the fits (minutes on a large set), never reaching its end.
Now the features and the fits are two stages (engine/ml/progress.py), the fit under way named."""
import re

from .conftest import ROOT
from .test_cli_progress import _run

DATA = ROOT / "engine" / "ml" / "data" / "vi_sms_train.tsv"
BAR = re.compile(r"(\d+)%\|[^|]*\| *(\d+)/(\d+)")


def test_the_bar_counts_the_fits_not_the_messages(tmp_path):
    rc, err = _run(["ml", "train", "--data", DATA, "--out", tmp_path / "m"], True, tmp_path)
    assert rc == 0, err
    head, cv_line, _ = err.partition("cross-validated MCC")
    assert cv_line, err
    before = BAR.findall(head)
    assert before, head
    # the cross-validation done, the validation and calibration fits still to come: well short of the end
    assert int(before[-1][0]) < 60, before[-1]                  # before: 100 (4729/4741, shown rounded)
    assert "cross-validation, fold" in head                     # the fit under way, named
    last = BAR.findall(err)[-1]
    assert last[1] == last[2], last                             # the bar reaches its end (before: one short)


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path):
    rc, err = _run(["ml", "train", "--data", DATA, "--out", tmp_path / "m"], False, tmp_path)
    assert rc == 0, err
    assert not BAR.search(err)
