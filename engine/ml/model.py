"""Model files and the fast scorer.

A model directory holds `weights.npz` (four float64 vectors over the feature ids, stored
sparsely — the NB log-count ratios r, the NBSVM member's weights w1, the idf, the binary TF-IDF
member's weights w2 — plus intercept and Platt calibration) and `card.json` (version, creation
time, training data hashes and counts, metrics, thresholds, feature configuration, language
shifts). No pickle, no joblib.

The scorer reproduces scikit-learn's arithmetic for train.Pair (two LinearSVC on L2-normalised
binary rows, margins scaled and summed) -> Platt LogisticRegression.predict_proba, without
building a sparse matrix per message: over the distinct feature ids j of the text,
    z = (sum r_j w1_j) / sqrt(sum r_j^2) + (sum idf_j w2_j) / sqrt(sum idf_j^2) + b
    p = 1 / (1 + exp(-(a z + c + s_lang)))
where s_lang is the card's per-language logit shift (train.language_calibration).
Loading validates the card, refuses a feature configuration this build does not produce,
and replays the card's self-check texts, which must reproduce within 1e-9.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import features as F

CARD_FORMAT = "telfilter-model"
CARD_VERSION = 1
# Score cache bound: 65,536 texts of at most 480 characters (three concatenated SMS parts), each kept as the
# 16-byte BLAKE2b digest of its UTF-8, never the text: an entry costs the same whatever the text (the digest's bytes
# object 64 B as allocated, the float 32, the OrderedDict's slot, link and index ~65): ~10 MiB in all, where the text
# as key took ~39 MiB of ASCII texts and ~131 MiB with an emoji in each (tracemalloc, 480-character texts). 128 bits:
# two texts sharing a digest (one cached score answering for another) take ~2^64 tries to find, even on purpose.
CACHE_ENTRIES = 65536
CACHE_MAX_CHARS = 480
CACHE_KEY_BYTES = 16


def text_digest_py(text: str) -> bytes:
    """The score cache's key of `text` (the compiled text_digest computes the same, without the encoded copy)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=CACHE_KEY_BYTES).digest()


# a build older than text_digest falls back too
text_digest = getattr(F._C, "text_digest", None) or text_digest_py


class ModelError(Exception):
    pass


def feature_config() -> dict:
    return {"name": F.FEATURE_VERSION, "dim_bits": F.DIM_BITS, "char_ngrams": list(F.CHAR_NGRAMS),
            "word_ngrams": [1, 2], "folded_words": True, "char_ngrams_on": "folded",
            "raw_char_ngrams": list(F.RAW_NGRAMS), "shape_tokens": True,
            "normalisation": ["latin-lookalikes", "teencode-vi", "dotted-letters", "leet", "url-phone-money-tokens", "keyword-cta", "shouted-word"],
            "weighting": "binary; pair: nb-ratio-l2 + idf-l2"}


def default_model_dir() -> Path:
    return Path(__file__).resolve().parent / "default_model"


class Scorer:
    def __init__(self, nb: np.ndarray, coef1: np.ndarray, idf: np.ndarray, coef2: np.ndarray, intercept: float,
                 calib_a: float, calib_c: float, tag_threshold: float, drop_threshold: float, version: str,
                 card: dict | None = None, language_shift: dict | None = None):
        self.nb, self.coef1, self.idf, self.coef2 = (np.ascontiguousarray(v, dtype=np.float64)
                                                     for v in (nb, coef1, idf, coef2))
        # (r, r w1, idf, idf w2) per id, interleaved: one 16-byte fetch per distinct feature. float32: the table
        # (2^20 ids, 16 MB) is read at ~1,000 random ids a text, far beyond the caches; at float64 (32 MB) a
        # 160-character text scored in 22 µs, at float32 in 18 (`python -m engine.ml.bench`). The rounding moves a
        # probability by ~1e-8; both scoring paths read these same values (parity), training's self-check too.
        self._quads = np.empty((len(self.nb), 4), dtype=np.float32)   # F.QUAD_BYTES an id
        self._quads[:, 0] = self.nb
        self._quads[:, 1] = self.nb * self.coef1
        self._quads[:, 2] = self.idf
        self._quads[:, 3] = self.idf * self.coef2
        self.intercept, self.a, self.c = float(intercept), float(calib_a), float(calib_c)
        self.tag_threshold, self.drop_threshold = float(tag_threshold), float(drop_threshold)
        self.version = version
        self.card = card or {}
        # per-language logit shift: each language's own drop threshold lands on drop_threshold
        self.shift = {str(k): float(v) for k, v in (language_shift or {}).items()}
        self._shift_vi, self._shift_en = self.shift.get("vi", 0.0), self.shift.get("en", 0.0)
        # A2P traffic repeats texts (campaigns, templates): remember recent scores by exact text (its digest).
        # Least recently used first out; every operation is O(1) (OrderedDict's linked list).
        self._cache: OrderedDict = OrderedDict()
        self.cache_size = CACHE_ENTRIES

    def decision_language(self, text: str) -> tuple[float, bool]:
        """(sum of the two members' scaled margins, text is Vietnamese)."""
        text = F.latin(text)
        if F._C is not None:
            d, vi = F._C.decision(text, F.normalise(text), self._quads, self.intercept)
            return d, bool(vi)
        idx = np.unique(F.feature_ids(text))             # binary features: presence only
        q = self._quads[idx].astype(np.float64)          # the compiled path's float32 values, summed in float64
        d = self.intercept
        for a, aw in ((q[:, 0], q[:, 1]), (q[:, 2], q[:, 3])):
            n = math.sqrt(float(np.dot(a, a)))
            if n:
                d += float(aw.sum()) / n
        return d, F.language(text) == "vi"

    def decision(self, text: str) -> float:
        return self.decision_language(text)[0]

    def score(self, text: str) -> float:
        if len(text) > CACHE_MAX_CHARS:
            return self._score(text)
        cache = self._cache
        key = text_digest(text)
        p = cache.get(key)
        if p is not None:
            cache.move_to_end(key)
            return p
        p = self._score(text)
        if len(cache) >= self.cache_size:
            cache.popitem(last=False)
        cache[key] = p
        return p

    def _score(self, text: str) -> float:
        C = F._C
        # the compiled scorer called here, not through decision_language: one Python frame a text less
        if C is not None:
            if not text.isascii():
                text = F.latin(text)
            d, vi = C.decision(text, F.normalise(text), self._quads, self.intercept)
        else:
            d, vi = self.decision_language(text)
        t = self.a * d + self.c + (self._shift_vi if vi else self._shift_en)
        # numerically stable logistic
        if t >= 0:
            return 1.0 / (1.0 + math.exp(-t))
        e = math.exp(t)
        return e / (1.0 + e)

    def logit(self, text: str) -> float:
        """The calibrated log-odds `score` takes the logistic of (for explanations: it does not saturate at 0 or 1 as
        the probability does; `_score` repeats these lines, a call less on the hot path)."""
        d, vi = self.decision_language(text)
        return self.a * d + self.c + (self._shift_vi if vi else self._shift_en)

    def action(self, p: float) -> str:
        return "drop" if p >= self.drop_threshold else "tag" if p >= self.tag_threshold else "allow"


_ARRAYS = ("nb", "coef1", "idf", "coef2")


def save_model(out: Path, nb: np.ndarray, coef1: np.ndarray, idf: np.ndarray, coef2: np.ndarray, intercept: float,
               calib_a: float, calib_c: float, card: dict) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, v in zip(_ARRAYS, (nb, coef1, idf, coef2)):
        i = np.flatnonzero(v)                # features never seen in training weigh 0: stored sparsely
        arrays[f"{name}_idx"], arrays[f"{name}_val"] = i.astype(np.int64), np.asarray(v, np.float64)[i]
    tmp = out / "weights.tmp.npz"
    np.savez_compressed(tmp, intercept=np.float64(intercept), calib=np.array([calib_a, calib_c], np.float64), **arrays)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    card = dict(card, weights_sha256=digest)
    ctmp = out / "card.json.tmp"
    try:                                 # both written in full before either replaces a model already there
        ctmp.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out / "weights.npz")
    ctmp.replace(out / "card.json")


def load_scorer(d: Path) -> Scorer:
    """The model in directory `d`, checked: its card, the weights' checksum, shapes and finite values, and the
    card's self-check texts scored again. Anything wrong is a ModelError (serve keeps its old model)."""
    try:
        return _load_scorer(Path(d))
    except ModelError:
        raise
    except Exception as e:           # a card or weights file of the wrong shape: refused, never a traceback
        raise ModelError(f"{d}: not a usable model ({type(e).__name__}: {e})") from None


def _load_scorer(d: Path) -> Scorer:
    cp, wp = d / "card.json", d / "weights.npz"
    if not cp.exists() or not wp.exists():
        raise ModelError(f"{d}: not a model directory (needs card.json and weights.npz)")
    try:
        card = json.loads(cp.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{cp}: not valid JSON: {e}") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelError(f"{cp}: not a telfilter model card")
    if card.get("card_version") != CARD_VERSION:
        raise ModelError(f"{cp}: card version {card.get('card_version')!r} not supported (this build reads {CARD_VERSION})")
    fc = card.get("feature_config")
    if fc != feature_config():
        ours = feature_config()
        if isinstance(fc, dict):            # name what differs, not two whole configurations
            diff = "; ".join(f"{k}: {fc.get(k, '(none)')!r} in the card, {ours.get(k, '(none)')!r} in this build"
                             for k in sorted(set(fc) | set(ours), key=str) if fc.get(k) != ours.get(k))
        else:
            diff = f"{fc!r} in the card"
        raise ModelError(f"{cp}: feature configuration not supported by this build ({diff}): a model from another "
                         "version of telfilter; retrain it with this one (`telfilter ml train`), or serve the bundled "
                         'model meanwhile ([ml] model = "")')
    raw = wp.read_bytes()
    if not isinstance(card.get("weights_sha256"), str):
        raise ModelError(f"{cp}: weights_sha256 is required (the weights are checked against it)")
    if hashlib.sha256(raw).hexdigest() != card["weights_sha256"]:
        raise ModelError(f"{wp}: checksum does not match the card (corrupt or replaced)")
    if not isinstance(card.get("selfcheck"), list) or not card["selfcheck"]:
        raise ModelError(f"{cp}: selfcheck texts are required (they prove the features match training)")
    try:
        with np.load(wp, allow_pickle=False) as z:
            vecs = []
            for name in _ARRAYS:
                v = np.zeros(F.DIM)
                idx, val = z[f"{name}_idx"], z[f"{name}_val"]
                if idx.ndim != 1 or idx.shape != val.shape or (idx.size and (idx.min() < 0 or idx.max() >= F.DIM)):
                    raise ValueError(f"{name}: indexes and values do not match, or an index is outside 0..2^{F.DIM_BITS}")
                v[idx] = val
                vecs.append(v)
            intercept = float(z["intercept"])
            a, c = (float(x) for x in z["calib"])
            if not all(np.isfinite(x).all() for x in (*vecs, intercept, a, c)):
                raise ValueError("a weight is not a finite number")
    except (KeyError, ValueError, IndexError, OSError) as e:
        raise ModelError(f"{wp}: unreadable weights ({e})") from None
    th = card.get("thresholds", {})
    try:
        tag, drop = float(th["tag"]), float(th["drop"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{cp}: thresholds.tag and thresholds.drop are required") from None
    if not 0 <= tag <= drop <= 1:
        raise ModelError(f"{cp}: thresholds must satisfy 0 <= tag <= drop <= 1")
    shifts = (card.get("calibration") or {}).get("language_shift") or {}
    # json.loads reads NaN and Infinity: a NaN shift scores every message of that language NaN (never tagged
    # or dropped), an infinite one 0 or 1 (all allowed, or all dropped)
    if not isinstance(shifts, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v) for v in shifts.values()):
        raise ModelError(f"{cp}: calibration.language_shift must map languages to finite numbers")
    s = Scorer(*vecs, intercept, a, c, tag, drop, str(card.get("model_version", "unknown")), card, shifts)
    for item in card.get("selfcheck", []):
        want = item["p"]
        if not isinstance(want, (int, float)) or isinstance(want, bool) or not 0 <= want <= 1:
            raise ModelError(f"{cp}: self-check probability {want!r} is not a number in 0..1")
        got = s.score(item["text"])
        # `not <=`: a NaN score (or expected score) fails; `abs(NaN - p) > 1e-6` is False and passed it. 1e-6: a
        # model trained before the scorer's weights were float32 has probabilities ~1e-8 off; a feature computed
        # otherwise than in training moves one by far more
        if not abs(got - want) <= 1e-6:
            raise ModelError(f"{cp}: self-check failed ({got!r} != {want!r}): features differ from training")
    return s
