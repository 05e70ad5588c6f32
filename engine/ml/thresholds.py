"""Thresholds: the blocked-ham targets of each language, the drop and tag thresholds that meet them on
out-of-fold scores, the per-language logit shifts that let one pair of thresholds serve every language,
and the metrics `ml eval` reports.

Targets: `target_blocked_ham` (default 0.1%) is the share of UNSEEN ham a threshold may be
expected to block. A threshold that k of n out-of-fold ham scores exceed blocks, on average,
(k + 1) / (n + 1) of new ham (a new ham outranks the (k+1)-th highest of n with that
probability), so k is the largest with (k + 1) / (n + 1) <= target: with the ~3,390 English ham
of the shared data, k = 2 for 0.1%. A language whose ham is too few to resolve the rate gets
(MIN_BLOCKED_HAM + 1) / (n_ham + 1), i.e. k = MIN_BLOCKED_HAM (0: above its highest-scoring
out-of-fold ham, an expected 0.23% of unseen ham blocked with ~440 Vietnamese ham), the nearest
the data can come to the target; one outlier ham that alone costs 5% of the spam is let through
(EXTRA_HAM_MIN_GAIN).
"""
from __future__ import annotations

import numpy as np

# Out-of-fold ham messages a language's drop threshold may block at least: the threshold is an
# extreme-value estimate, and the k-th highest ham is a stabler one the larger k is. In 8
# repeated stratified 80/20 splits (same scores, only the targets changed), Vietnamese 0.75%
# and English 0.15% instead of 2 / n_ham and 0.1% raised Vietnamese spam caught on the held-out
# part from 86.8% to 88.4% (blocked ham mean 0.47% -> 0.58%, max 0.93% both) and English MCC
# from 0.922 to 0.933 (blocked ham mean 0.09% both).
# With the raw-text n-grams (8 paired 75/25 splits of the shared data) k out-of-fold ham above
# the threshold blocked about (k + 1) / (n + 1) of unseen ham: Vietnamese k = 3 of ~400 gave
# 1.25% mean (2.73% worst) on the held-out quarter, k = 2 gave 0.91%, at 90.2% / 87.5% spam
# caught; English k = 2-3 of ~2,470 gave 0.12-0.13% at MCC 0.937-0.941. Three keeps the
# Vietnamese expectation (4 / 534 = 0.75% on the whole set) inside its 1% target.
# With NBSVM and the shape tokens (8 splits, C=1): Vietnamese k = 2 / 3 / 4 blocked 0.91% /
# 1.14% / 1.70% of the held-out ham on the mean (1.82% / 3.64% / 4.55% worst) at 90.8% /
# 92.8% / 94.3% spam caught: two keeps the mean inside the 1% target.
# With the model pair (train.Pair; 8 splits, C=3): Vietnamese k = 1 / 2 blocked 0.68% / 1.02%
# (1.82% / 3.64% worst) at 91.6% / 94.0% caught (87.3% / 91.8% worst): one leaves the margin
# under 1% that an unseen set needs. English had k = floor(0.1% n): 2 of ~2,540 ham in a split,
# 3 of the ~3,390 of the whole set.
# k is now the largest with (k + 1) / (n + 1) <= target, the expected share of unseen ham blocked
# (k = floor(target n) blocked (k + 1) / (n + 1) > target on average). The 75/25 splits above
# had hidden the difference: at 75% of the English ham floor(0.1% n) is 2, at 90% and at 100%
# it is 3. Measured on 40 repeated stratified 90/10 splits of the shared data (retrained as an
# analyst would, pooled over the splits): English blocked 0.155% of the held-out ham at 6.28%
# spam missed with k = floor(0.1% n) = 3, 0.089% at 6.79% with k = 2; the chance of meeting the
# issue's English target on a 1,131-ham / 163-spam hold-out at those rates rose from 0.62 to 0.73.
# Vietnamese k was MIN_BLOCKED_HAM = 1 then.
# MIN_BLOCKED_HAM = 0 since stop 44: k = 1 of ~440 Vietnamese ham expects 0.45% of unseen ham blocked, and a
# Vietnamese hold-out of ~120 ham meets a 1% target only with at most one blocked, while its spam caught had room
# (85% needed, ~92-95% caught). 48 paired 75/25 splits (split seeds 0-47, fold seed 42; the Vietnamese held-out
# quarters pooled; the other rule and the English threshold unchanged): the analyst's retrain blocked 29 -> 22 of
# 5,280 held-out ham at 7.7% -> 9.1% spam missed, the bundled recipe 16 -> 12 at 5.1% -> 6.2%; the chance of
# meeting the target on a 120-spam / 120-ham hold-out at those rates 0.86 -> 0.90 (retrain), 0.95 -> 0.97
# (bundled). English (k = 2 from its rate) is unchanged.
MIN_BLOCKED_HAM = 0
# The tag threshold's floor: TAG_MIN_BLOCKED_HAM out-of-fold ham of a small language above it (3 of ~440
# Vietnamese, as before the drop threshold's floor went from 1 to 0).
TAG_MIN_BLOCKED_HAM = 3
# The tag threshold is held to TAG_SCALE times the drop's blocked-ham target (tagging is the softer
# action, but a tagged ordinary message is still a visible mistake).
TAG_SCALE = 3.0
# One more out-of-fold ham may sit above a language's threshold when that alone lets through at least this
# share of its spam: with MIN_BLOCKED_HAM = 1 of ~330-440 Vietnamese ham, two look-alike service notices
# scoring like phishing set the threshold, and on one of 16 splits (fold seed 7) it rose to 0.997 and caught
# 75.5% of the held-out spam. With the rule (16 splits, same run, two fold seeds): Vietnamese caught
# 92.6 / 88.2% -> 93.2 / 88.2% (seed 42, same false blocks), 90.9 / 75.5% -> 92.7 / 88.2% (seed 7, one split
# blocks 2 ham instead of 0); with our examples in training unchanged. English (~480 spam) never meets it.
EXTRA_HAM_MIN_GAIN = 0.05


def language_targets(y, groups, rate, min_blocked: int = MIN_BLOCKED_HAM) -> dict:
    """{language group: blocked-ham target}; a rate too fine for the group's ham count
    becomes (min_blocked + 1) / (n_ham + 1), what a threshold above all but min_blocked
    of its ham blocks of unseen ham (min_blocked 0: above the highest; one outlier that alone costs
    EXTRA_HAM_MIN_GAIN of the spam is let through). (The tag threshold's targets: tag_targets.)"""
    out = {}
    for g in np.unique(groups):
        n = int(np.sum(~y & (groups == g)))
        floor = (min_blocked + 1) / (n + 1)
        out[str(g)] = max(rate, floor) if n and rate < floor else rate
    return out


def thresholds_per_language(p, y, langs, targets) -> tuple[float, dict]:
    """Highest of the per-language thresholds (each language within its target)."""
    per = {g: threshold_for(p[langs == g], y[langs == g], min(1.0, r)) for g, r in targets.items()}
    return max(per.values()), per


def tag_targets(y, groups, rate) -> dict:
    """The tag threshold's targets: TAG_SCALE times the drop's rate, a small language's floor
    TAG_MIN_BLOCKED_HAM out-of-fold ham (Vietnamese: 3 of ~440, as before the (k+1)/(n+1) rule)."""
    return language_targets(y, groups, TAG_SCALE * rate, TAG_MIN_BLOCKED_HAM)


def _logit(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def shift(p, langs, shifts: dict) -> np.ndarray:
    """Apply per-language logit shifts to probabilities (what the scorer does)."""
    s = np.array([shifts.get(str(g), 0.0) for g in langs])
    return 1.0 / (1.0 + np.exp(-(_logit(p) + s)))


def language_calibration(p, y, langs, targets, tags=None) -> tuple[float, float, dict, dict]:
    """(drop, tag, logit shift per language, own drop threshold per language).
    Each language gets its own drop threshold for its target; a logit shift then moves every
    language's threshold onto the highest one, so one pair of thresholds serves them all and
    the pipeline keeps comparing one probability with `drop`/`tag`. `tags`: the tag threshold's
    targets (tag_targets; TAG_SCALE x `targets` when not given)."""
    drop, per = thresholds_per_language(p, y, langs, targets)
    shifts = {g: float(_logit(drop) - _logit(t)) for g, t in per.items()} if len(per) > 1 else {}
    ps = shift(p, langs, shifts)
    tag, _ = thresholds_per_language(ps, y, langs, tags or {g: TAG_SCALE * r for g, r in targets.items()})
    return drop, min(tag, drop), shifts, per


def threshold_for(p, y, rate, extra_gain=EXTRA_HAM_MIN_GAIN):
    """Lowest threshold expected to block at most `rate` of unseen ham, judging by the ham in
    (p, y): above all but k of them, k the largest with (k + 1) / (n + 1) <= rate (see the module
    docstring); or one ham more when that alone blocks at least `extra_gain` of the spam more (see
    EXTRA_HAM_MIN_GAIN). A rate under 1 / (n + 1) is met as nearly as the data can: k = 0."""
    ham = np.sort(p[~y])
    k = max(0, int(np.floor(rate * (len(ham) + 1) + 1e-9)) - 1)     # 2 / 3 * 3 may come out as 1.999...
    if k >= len(ham):
        return 0.0

    def keeping(k):
        keep = ham[len(ham) - 1 - k]                   # highest ham that must not be blocked
        above = p[p > keep]
        return float((keep + above.min()) / 2) if len(above) else float(np.nextafter(keep, 2.0))

    t = keeping(k)
    spam = p[y]
    if extra_gain and k + 1 < len(ham) and len(spam):
        t2 = keeping(k + 1)
        if np.sum(spam >= t2) - np.sum(spam >= t) >= extra_gain * len(spam):
            return t2
    return t


def metrics(p, y, thr) -> dict:
    """The eval JSON's figures for probabilities p, labels y and a drop threshold. A figure with nothing to count
    is None (null), as summary.md's dash: no spam, recall / spam caught / F1; none dropped, precision; one class
    only, MCC and ROC AUC; no ham, blocked ham (a 0.0 read as "catches nothing" or "blocks nothing")."""
    from sklearn.metrics import matthews_corrcoef, roc_auc_score
    pred = p >= thr
    tp = int(np.sum(pred & y)); fp = int(np.sum(pred & ~y)); fn = int(np.sum(~pred & y)); tn = int(np.sum(~pred & ~y))
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    return {"precision": prec, "recall": rec, "f1": 2 * tp / (2 * tp + fp + fn) if tp + fn else None,
            "mcc": float(matthews_corrcoef(y, pred)) if len(set(y)) > 1 else None,
            "accuracy": (tp + tn) / len(y) if len(y) else None,
            "blocked_ham_rate": fp / (fp + tn) if fp + tn else None,
            "spam_caught_rate": rec,
            "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) > 1 else None,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, "threshold": thr,
            "n": int(len(y)), "spam": int(y.sum()), "ham": int((~y).sum())}


def shown(v, spec: str) -> str:
    """A metrics() figure as text: a dash for one with nothing to count (None)."""
    return "—" if v is None else format(v, spec)


def breakdown(p, y, thr, groups) -> dict:
    """metrics() per group value (language or kind), for the groups present."""
    groups = np.asarray(groups, dtype=object)
    out = {}
    for g in sorted({x for x in groups if x is not None}):
        m = groups == g
        out[str(g)] = metrics(p[m], y[m], thr)
    return out
