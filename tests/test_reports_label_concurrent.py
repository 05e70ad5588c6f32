"""Two analysts labelling the same reports at once (two terminals, or the TUI and a script): each `reports label`
reads the store and the label log, groups, then appends. What it chooses to write (skip a report that has this label
already; `--only-unlabelled`: skip a labelled one) was chosen on that first look, so a label another analyst appended
in between was lost: the ham a colleague gave a report was labelled over by `--only-unlabelled`, and a `label spam`
run after a colleague's `label ham` wrote nothing (its report was spam when it looked) and left it ham. The choice is
now made again under the log's exclusive lock, on what is in the log then."""
import json
import subprocess
import sys

from engine.analyst.store import Workspace

from .conftest import ROOT
from .test_analyst import HOME, LOAN, PRIZE, PRIZE_VI, _store


def _labels_on_disk(d):
    return [r.label for r in Workspace(d).reports]


def test_only_unlabelled_keeps_a_label_given_since_it_looked(tmp_path):
    _store(tmp_path, [PRIZE, PRIZE_VI, HOME])
    mine = Workspace(tmp_path)                       # analyst A has read the store: the campaign is unlabelled
    theirs = Workspace(tmp_path)
    theirs.label([theirs.reports[1].id], "ham")      # analyst B, meanwhile: this report is no spam
    campaign = mine.reports[0].campaign
    assert mine.reports[1].campaign == campaign
    assert mine.label([campaign], "spam", only_unlabelled=True) == 1
    assert _labels_on_disk(tmp_path) == ["spam", "ham", None]
    assert [r.label for r in mine.reports] == ["spam", "ham", None]


def test_the_later_label_wins_when_the_first_look_was_older(tmp_path):
    _store(tmp_path, [PRIZE, LOAN])
    Workspace(tmp_path).label([Workspace(tmp_path).reports[0].id], "spam")
    mine = Workspace(tmp_path)                       # A reads: the report is spam
    theirs = Workspace(tmp_path)
    theirs.label([theirs.reports[0].id], "ham")      # B labels it ham
    assert mine.label([mine.reports[0].id], "spam") == 1    # A, after B: spam (before: 0 written, left ham)
    assert _labels_on_disk(tmp_path) == ["spam", None]


def test_labelling_from_two_processes_at_once_keeps_every_label(tmp_path):
    texts = [PRIZE.replace("abc", f"a{i}") + f" ma {i * 7919 % 10007}" for i in range(6)]
    _store(tmp_path, texts)
    ids = [r.id for r in Workspace(tmp_path).reports]
    cmd = [sys.executable, "-m", "engine.cli", "reports", "label"]
    procs = [subprocess.Popen([*cmd, "spam" if i % 2 else "ham", rid, "--data-dir", str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i, rid in enumerate(ids)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and json.loads(out)["labelled"] == 1, err
    assert _labels_on_disk(tmp_path) == ["spam" if i % 2 else "ham" for i in range(len(ids))]
