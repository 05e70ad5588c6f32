"""Per-message cost of the scorer: `python -m engine.ml.bench [--model DIR] [--n 2000]`.

Scores the same 160-character texts (training messages padded with others to 160
characters) one at a time, uncached, with: the compiled scorer, the numpy reference path,
and scikit-learn on the same weights (the two members as linear models on normalised binary x
weight rows, summed, + Platt, rebuilt from the model files, plus the card's per-language logit shift) as the same-run baseline. Prints JSON, best of 5 runs.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from . import features as F
from .data import read_labelled
from .model import ModelError, default_model_dir, load_scorer

DATA = Path(__file__).resolve().parent / "data"


def texts_160(n: int, seed: int = 1) -> list[str]:
    src = read_labelled(DATA / "sms_spam_collection_train.tsv")[0]
    vi = DATA / "vi_sms_train.tsv"
    if vi.exists():
        src += read_labelled(vi)[0]
    rnd = random.Random(seed)
    rnd.shuffle(src)
    out = []
    for t in src[:n]:
        while len(t) < 160:
            t += " " + rnd.choice(src)
        out.append(t[:160])
    return out


def _best_us(fn, texts, reps=5) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, (time.perf_counter() - t0) / len(texts) * 1e6)
    return round(best, 2)


def sklearn_twin(sc):
    """decision(X of raw counts) with scikit-learn objects carrying the scorer's weights (the
    parity reference): each member a linear model on L2-normalised binary x weight rows."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    def shell(coef, b):
        m = LogisticRegression()
        m.coef_, m.intercept_, m.classes_ = coef.reshape(1, -1), np.array([b]), np.array([False, True])
        return m
    members = [(sc.nb, shell(sc.coef1, sc.intercept)), (sc.idf, shell(sc.coef2, 0.0))]

    def decision(X):
        # binary presence x the member's per-feature weight, built on X's own sparsity pattern
        # (a product with a 2^20 x 2^20 diagonal costs milliseconds per text)
        return sum(m.decision_function(normalize(csr_matrix((w[X.indices], X.indices, X.indptr), shape=X.shape)))
                   for w, m in members)
    cal = LogisticRegression()
    cal.coef_, cal.intercept_, cal.classes_ = np.array([[sc.a]]), np.array([sc.c]), np.array([False, True])
    return decision, cal


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.ml.bench", description=__doc__)
    ap.add_argument("--model", default=str(default_model_dir()))
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error(f"--n {a.n}: texts to score, at least 1")
    try:
        sc = load_scorer(Path(a.model))
    except ModelError as e:
        ap.error(f"--model: {e}")
    texts = texts_160(a.n)
    out = {"texts": len(texts), "chars": 160, "compiled": F._C is not None}
    if F._C is not None:
        out["scorer_compiled_us"] = _best_us(sc._score, texts)
    C, F._C = F._C, None
    try:
        out["scorer_numpy_us"] = _best_us(sc._score, texts, reps=2)
    finally:
        F._C = C
    decision, cal = sklearn_twin(sc)

    def skl(t):
        z = cal.decision_function(decision(F.matrix([t])).reshape(-1, 1))[0]
        return 1.0 / (1.0 + np.exp(-(z + sc.shift.get(F.language(t), 0.0))))     # + the card's language shift
    out["sklearn_predict_proba_us"] = _best_us(skl, texts[:300], reps=2)
    out["max_abs_diff_vs_sklearn"] = float(max(abs(skl(t) - sc._score(t)) for t in texts[:300]))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
