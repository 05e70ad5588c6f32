"""`telfilter ml cv`: repeated stratified hold-out, per file and language."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from engine.ml import cv
from engine.ml.data import read_dataset

DATA = Path(__file__).resolve().parents[1] / "engine" / "ml" / "data"


def _subset(src: Path, dst: Path, n_spam: int, n_ham: int) -> Path:
    """A small labelled TSV (header row, label/text) drawn from a shipped file."""
    ds = read_dataset(src)
    spam = [t for t, y in zip(ds.texts, ds.labels) if y == 1][:n_spam]
    ham = [t for t, y in zip(ds.texts, ds.labels) if y == 0][:n_ham]
    dst.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, ts in (("spam", spam), ("ham", ham))
                                             for t in ts), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cv")
    (d / "en").mkdir()
    (d / "vi").mkdir()
    return (_subset(DATA / "sms_spam_collection_train.tsv", d / "en" / "train.tsv", 60, 240),
            _subset(DATA / "vi_sms_train.tsv", d / "vi" / "train.tsv", 60, 60),
            DATA / "vi_examples.jsonl")


def test_held_out_parts_never_train_and_extra_always_does(files, monkeypatch):
    en, vi, extra = files
    data = [(str(en), read_dataset(en)), (str(vi), read_dataset(vi))]
    ex = [(str(extra), read_dataset(extra))]
    seen = []
    import engine.ml.train as T             # cv.run imports train when it runs: the spy is what it gets
    orig = T.train

    def spy(texts, labels, *a, **k):
        seen.append(list(texts))
        return orig(texts, labels, *a, **k)
    monkeypatch.setattr(T, "train", spy)
    res = cv.run(data, ex, splits=2, test_size=0.25)
    assert len(seen) == 2
    for s, trained in zip((0, 1), seen):
        tr = set(trained)
        assert set(ex[0][1].texts) <= tr
        for name, ds in data:
            y = np.array(ds.labels, dtype=bool)
            _, te = cv._split(y, 0.25, s)
            held = {ds.texts[i] for i in te}
            assert held and not (held & tr)
            row = next(r for r in res["rows"] if r["split"] == s and r["file"] == name)
            assert row["n"] == len(te) and row["spam"] == int(y[te].sum())
            # stratified: the held-out part keeps the file's spam share (to one message)
            assert abs(row["spam"] - round(0.25 * y.sum())) <= 1
    # the two splits hold out different messages
    y = np.array(data[0][1].labels, dtype=bool)
    assert set(cv._split(y, 0.25, 0)[1]) != set(cv._split(y, 0.25, 1)[1])


def test_cli_json_table_and_plot(files, tmp_path):
    en, vi, extra = files
    out, rep = tmp_path / "cv.json", tmp_path / "rep"
    cmd = [sys.executable, "-m", "engine.cli", "ml", "cv", "--data", str(en), "--data", str(vi), "--extra", str(extra),
           "--splits", "2", "--json", str(out), "--report", str(rep), "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    assert [(r["split"], r["file"]) for r in res["rows"]] == [(0, str(en)), (0, str(vi)), (1, str(en)), (1, str(vi))]
    s = res["summary"][str(en)]
    assert len(s["false_blocks"]) == 2 and len(s["misses"]) == 2
    assert s["mcc"]["worst"] <= s["mcc"]["mean"] <= 1.0
    assert s["blocked_ham_rate"]["worst"] >= s["blocked_ham_rate"]["mean"]
    rows = [r for r in res["rows"] if r["file"] == str(en)]
    assert s["pooled"]["blocked_ham_rate"] == sum(r["false_blocks"] for r in rows) / sum(r["ham"] for r in rows)
    assert s["pooled"]["spam_caught_rate"] == 1 - sum(r["misses"] for r in rows) / sum(r["spam"] for r in rows)
    assert "en" in s["by_language"] and "vi" in res["summary"][str(vi)]["by_language"]
    assert (rep / "cv.png").stat().st_size > 10_000
    # the table names the two train.tsv files apart
    assert "en/train.tsv" in p.stderr and "vi/train.tsv" in p.stderr
    # reproducible: the same seeds give the same rows
    p2 = subprocess.run(cmd[:-5] + ["--no-progress"], capture_output=True, text=True, timeout=600)
    assert p2.returncode == 0, p2.stderr
    assert json.loads(p2.stdout)["rows"] == res["rows"]


def test_bad_arguments_and_files(tmp_path, files):
    en = files[0]
    base = [sys.executable, "-m", "engine.cli", "ml", "cv", "--no-progress"]
    p = subprocess.run(base + ["--data", str(en), "--splits", "0"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--splits" in p.stderr
    p = subprocess.run(base + ["--data", str(tmp_path / "missing.tsv")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "missing.tsv" in p.stderr
    p = subprocess.run(base + ["--data", str(en), "--extra", str(en)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "as --data and as --extra" in p.stderr


def test_short_names():
    assert cv.short_names(["a/en/train.tsv", "b/vi/train.tsv", "c/x.jsonl"]) == {
        "a/en/train.tsv": "en/train.tsv", "b/vi/train.tsv": "vi/train.tsv", "c/x.jsonl": "x.jsonl"}


def test_seeds_outside_numpys_range_are_refused_by_the_option_that_took_them(tmp_path):
    # --seed -1 / --first-split -5 reached scikit-learn, whose error named `random_state`, which no option is called
    from tests.conftest import run_cli
    data = "engine/ml/data/vi_sms_train.tsv"
    for args, says in ((("ml", "train", "--data", data, "--seed", "-1", "--out", tmp_path / "m"), "argument --seed:"),
                       (("ml", "cv", "--data", data, "--first-split", "-5"), "argument --first-split:"),
                       (("ml", "cv", "--data", data, "--fold-seed", str(2**32)), "argument --fold-seed:"),
                       (("ml", "cv", "--data", data, "--splits", "3", "--first-split", str(2**32 - 1)),
                        "--first-split + --splits - 1 must be at most")):
        r = run_cli(*args, "--data-dir", tmp_path / "d")
        assert r.returncode == 2 and says in r.stderr and "random_state" not in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()
