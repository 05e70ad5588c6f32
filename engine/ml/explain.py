"""Which words of a text moved its score (`telfilter ml predict --explain`): each word is left out in turn and the
text scored again; a word's effect is the score with it minus the score without it, in log-odds (`logit`: the
calibrated score before the logistic, which does not saturate as a probability of 0.9999 does) and in probability
(positive: it pushed the text towards spam). For the care desk asked why a subscriber's message was dropped as ML_SPAM, and the analyst
reading a candidate model's changes: the features are hashed n-grams, so no weight can be read back as a word.

A word is a run of non-blank characters as written; it is left out with the blanks after it (the last word with
those before it; the text's other separators, line breaks included, stay as written); a word seen more than once is left out everywhere at once (its
effect is the whole word's). A text of up to MAX_WORDS words is explained (a 160-character SMS has ~30): each costs
one scoring (~15 µs compiled), so an explanation is under a millisecond or two.
"""
from __future__ import annotations

import re

MAX_WORDS = 200


class TooLong(ValueError):
    """A text of more distinct words than MAX_WORDS."""
_SPLIT = re.compile(r"(\S+)")             # separators at even indices, words at odd ones


def explain(scorer, text: str, top: int = 5) -> list[dict]:
    """The `top` words with the largest effect either way, largest first: [{"word", "logit", "probability"}] (the
    changes the word makes). `scorer`: a model.Scorer. A text of more than MAX_WORDS distinct words: TooLong."""
    parts = _SPLIT.split(text)
    words = list(dict.fromkeys(parts[1::2]))
    if len(words) > MAX_WORDS:
        raise TooLong(f"{len(words)} distinct words: --explain takes texts of up to {MAX_WORDS}")
    z, p = scorer.logit(text), scorer.score(text)
    out = []
    for w in words:
        kept = [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2) if parts[i] != w]
        # each kept word with the blanks after it, the last with the text's own end
        without = parts[0] + "".join(a + b for a, b in kept[:-1]) + (kept[-1][0] if kept else "") + parts[-1]
        out.append((z - scorer.logit(without), w, p - scorer.score(without)))
    out.sort(key=lambda e: (-abs(e[0]), e[1]))
    return [{"word": w, "logit": round(dz, 3), "probability": round(dp, 4)} for dz, w, dp in out[:top]]
