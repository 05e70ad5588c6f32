"""Training: de-duplicate, hold out a stratified validation split, pick C by cross-validation,
calibrate (Platt, on out-of-fold scores), choose thresholds for a target blocked-ham rate,
refit on everything, and write the model directory.

Thresholds: `drop` is the lowest probability at which at most `target_blocked_ham` of
the out-of-fold ham would be blocked; `tag` the same for three times that rate (tagging is
the softer action, but a tagged ordinary message is still a visible mistake).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from . import features as F
from .model import CARD_FORMAT, CARD_VERSION, feature_config, save_model

C_GRID = (30.0, 100.0, 300.0)
FOLDS = 5


def _progress(total, desc, enabled):
    try:
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, disable=not enabled, unit="step", leave=False)
    except ImportError:       # tqdm is a declared dependency; this keeps training usable without it
        class _P:
            def update(self, n=1): ...
            def close(self): ...
        return _P()


def dedup(texts, labels):
    """Keep the first of each normalised text; a text seen with both labels is kept as spam."""
    seen: dict = {}
    for t, y in zip(texts, labels):
        k = F._canonical(t)
        if k in seen:
            if y == 1:
                seen[k] = (seen[k][0], 1)
        else:
            seen[k] = (t, y)
    out = list(seen.values())
    return [t for t, _ in out], np.array([y for _, y in out], dtype=bool)


def _fit(X, y, C):
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    tf = TfidfTransformer(sublinear_tf=True).fit(X)
    lr = LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=5000)
    lr.fit(tf.transform(X), y)
    return tf, lr


def _oof(X, y, C, seed, prog):
    from sklearn.model_selection import StratifiedKFold
    d = np.zeros(len(y))
    for tr, te in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(X, y):
        tf, lr = _fit(X[tr], y[tr], C)
        d[te] = lr.decision_function(tf.transform(X[te]))
        prog.update(1)
    return d


def threshold_for(p, y, rate):
    """Lowest threshold blocking at most `rate` of the ham in (p, y)."""
    ham = np.sort(p[~y])
    k = int(np.floor(rate * len(ham)))
    if k >= len(ham):
        return 0.0
    keep = ham[len(ham) - 1 - k]                       # highest ham that must not be blocked
    above = p[p > keep]
    return float((keep + above.min()) / 2) if len(above) else float(np.nextafter(keep, 2.0))


def metrics(p, y, thr) -> dict:
    from sklearn.metrics import matthews_corrcoef, roc_auc_score
    pred = p >= thr
    tp = int(np.sum(pred & y)); fp = int(np.sum(pred & ~y)); fn = int(np.sum(~pred & y)); tn = int(np.sum(~pred & ~y))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "mcc": float(matthews_corrcoef(y, pred)) if len(set(y)) > 1 else 0.0,
            "accuracy": (tp + tn) / len(y) if len(y) else 0.0,
            "blocked_ham_rate": fp / (fp + tn) if fp + tn else 0.0,
            "spam_caught_rate": rec,
            "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) > 1 else None,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, "threshold": thr,
            "n": int(len(y)), "spam": int(y.sum()), "ham": int((~y).sum())}


def _platt(d, y):
    from sklearn.linear_model import LogisticRegression
    cal = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000).fit(d.reshape(-1, 1), y)
    return cal


def train(texts, labels, infos, out, target_blocked_ham=0.001, seed=42, progress=True, c_grid=C_GRID, log=print):
    from sklearn.model_selection import train_test_split
    t0 = time.time()
    texts, y = dedup(texts, labels)
    if y.sum() < FOLDS or (~y).sum() < FOLDS:
        raise ValueError(f"need at least {FOLDS} spam and {FOLDS} ham after de-duplication (have {int(y.sum())}/{int((~y).sum())})")
    log(f"training on {len(y)} distinct messages ({int(y.sum())} spam, {int((~y).sum())} ham)")
    steps = len(y) + FOLDS * len(c_grid) + 2 + FOLDS + 1
    prog = _progress(steps, "ml train", progress)
    X = F.matrix(texts, prog)
    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    # model selection by CV on the training part only
    best = None
    for C in c_grid:
        d = _oof(X[tr], y[tr], C, seed, prog)
        thr = threshold_for(d, y[tr], target_blocked_ham)
        m = metrics(d, y[tr], thr)["mcc"]
        log(f"  C={C:g}: cross-validated MCC {m:.4f} at {target_blocked_ham:.2%} blocked ham")
        if best is None or m > best[0]:
            best = (m, C, d)
    _, C, d_tr = best
    # validation: fit on the training part, calibrate on its out-of-fold scores
    cal = _platt(d_tr, y[tr])
    p_tr = cal.predict_proba(d_tr.reshape(-1, 1))[:, 1]
    drop_t = threshold_for(p_tr, y[tr], target_blocked_ham)
    tf, lr = _fit(X[tr], y[tr], C)
    prog.update(1)
    p_va = cal.predict_proba(lr.decision_function(tf.transform(X[va])).reshape(-1, 1))[:, 1]
    val = metrics(p_va, y[va], drop_t)
    log(f"  validation (held out, {len(va)} messages): MCC {val['mcc']:.4f}, blocked ham {val['blocked_ham_rate']:.3%}, "
        f"spam caught {val['spam_caught_rate']:.2%}")
    # final: out-of-fold over everything for calibration and thresholds, then refit on all
    d_all = _oof(X, y, C, seed + 1, prog)
    cal = _platt(d_all, y)
    p_all = cal.predict_proba(d_all.reshape(-1, 1))[:, 1]
    drop_t = threshold_for(p_all, y, target_blocked_ham)
    tag_t = min(threshold_for(p_all, y, min(1.0, 3 * target_blocked_ham)), drop_t)
    tf, lr = _fit(X, y, C)
    prog.update(1)
    prog.close()
    a, c = float(cal.coef_[0, 0]), float(cal.intercept_[0])
    idf = np.asarray(tf.idf_, dtype=np.float64)
    coef = np.asarray(lr.coef_[0], dtype=np.float64)
    now = datetime.now(timezone.utc)
    ver = f"sms-lr-{now:%Y%m%d%H%M%S}"
    from .model import Scorer
    sc = Scorer(idf, coef, float(lr.intercept_[0]), a, c, tag_t, drop_t, ver)
    sample = [texts[i] for i in np.linspace(0, len(texts) - 1, num=min(8, len(texts)), dtype=int)]
    card = {
        "format": CARD_FORMAT, "card_version": CARD_VERSION, "model_version": ver,
        "created": now.isoformat(timespec="seconds"),
        "classifier": {"type": "logistic_regression", "library": "scikit-learn", "C": C,
                       "class_weight": "balanced", "solver": "liblinear"},
        "calibration": {"type": "platt", "a": a, "c": c, "fitted_on": "out-of-fold decision values"},
        "feature_config": feature_config(),
        "thresholds": {"tag": tag_t, "drop": drop_t, "target_blocked_ham": target_blocked_ham},
        "training_data": infos,
        "counts": {"distinct": int(len(y)), "spam": int(y.sum()), "ham": int((~y).sum())},
        "metrics": {"validation": val, "out_of_fold": metrics(p_all, y, drop_t)},
        "selfcheck": [{"text": t, "p": sc.score(t)} for t in sample],
        "train_seconds": round(time.time() - t0, 1),
    }
    save_model(out, idf, coef, float(lr.intercept_[0]), a, c, card)
    return card, (tf, lr, cal)
