"""`ml promote --gate FILE`: a candidate model is installed only if, on the analyst's labelled gate messages, it is no
worse than the model serve loads, language by language: it drops no more of their ham, and catches no less of their
spam than that model less a tolerance (a point or two of spam traded for fewer blocked messages is an analyst's
call; a blocked legitimate message more is not made silently). Pure: it reads `compare()`'s summary
(engine/analyst/compare.py), both models judged with the thresholds serve would use for them."""
from __future__ import annotations

SPAM_TOLERANCE = 0.02           # spam caught may be this much lower (a share, per language) than the served model's


def gate(summary: dict, spam_tolerance: float = SPAM_TOLERANCE) -> dict:
    """{"passed": bool, "reasons": [...], "by_language": {lang: {served/candidate figures}}} for a summary of two
    models (the served one first, the candidate second) on labelled messages."""
    served, cand = summary["models"][0], summary["models"][1]
    rows, reasons = {}, []
    for lang in sorted(set(served["by_language"]) | set(cand["by_language"])):
        a, b = served["by_language"].get(lang), cand["by_language"].get(lang)
        if a is None or b is None:
            continue
        row = {"ham": a["ham"], "spam": a["spam"],
               "blocked_ham": [a["confusion"]["fp"], b["confusion"]["fp"]],
               "spam_caught_rate": [None if r is None else round(r, 4)         # (None: no spam to catch)
                                    for r in (a["spam_caught_rate"], b["spam_caught_rate"])]}
        rows[lang] = row
        if b["confusion"]["fp"] > a["confusion"]["fp"]:
            reasons.append(f"{lang}: the candidate drops {b['confusion']['fp']} of the {a['ham']} ham messages, the "
                           f"served model {a['confusion']['fp']}")
        if a["spam"] and b["spam_caught_rate"] < a["spam_caught_rate"] - spam_tolerance - 1e-12:
            reasons.append(f"{lang}: the candidate catches {b['spam_caught_rate']:.1%} of the {a['spam']} spam "
                           f"messages, the served model {a['spam_caught_rate']:.1%} (tolerance "
                           f"{spam_tolerance:.1%})")
    return {"passed": not reasons, "reasons": reasons, "spam_tolerance": spam_tolerance, "by_language": rows}
