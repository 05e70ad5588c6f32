"""A verdict line's hits as the regulator's report reads them (aggregate.py counts them): the violation classes of
the advertising rules' symbols, an ad rule's hit, the model version of an ML_SPAM hit."""
from __future__ import annotations

from sys import intern

from .bounded import bounded

# violation class -> the symbols of config/rules/20-advertising-sms.toml and 30-advertising-calls.toml
VIOLATIONS = {
    "frequency_cap": ("AD_FREQUENCY_CAP", "AD_CALL_FREQUENCY_CAP"),
    "hours": ("AD_OUTSIDE_HOURS", "AD_CALL_OUTSIDE_HOURS"),
    "dnc": ("AD_TO_DNC", "AD_CALL_TO_DNC"),
    "label": ("AD_LABEL_MISSING",),
    "opt_out": ("AD_NO_OPTOUT",),
    "sender_not_qc": ("AD_SENDER_NOT_QC",),
}
_VIOLATION_OF = {s: v for v, syms in VIOLATIONS.items() for s in syms}


class _AllSymbols:
    """`seen` for a late line whose message is not known: every symbol counted already."""

    def __contains__(self, sym) -> bool:
        return True


_ALL = _AllSymbols()


def _model(h) -> str:
    """The model version of an ML_SPAM hit (its source, `model:<version>`)."""
    src = str(h.get("source", ""))
    return bounded(src[6:] if src.startswith("model:") else src or "?")


def _classify(hits):
    """(an ad rule hit, the violation classes, the symbols, the model of its ML_SPAM hit or None) of a line's hits,
    counting nothing (as `_hits` reads them: an AD_* symbol other than AD_COPY_RECEIVED, a 5656 FW, is an ad
    rule's)."""
    ad_hit, violations, symbols, model = False, set(), set(), None
    for h in hits:
        sym = h.get("symbol") if isinstance(h, dict) else None
        if isinstance(sym, str):
            symbols.add(intern(sym))
            v = _VIOLATION_OF.get(sym)
            if v is not None:
                violations.add(v)
            ad_hit = ad_hit or (sym.startswith("AD_") and sym != "AD_COPY_RECEIVED")
            if sym == "ML_SPAM" and model is None:
                model = _model(h)
    return ad_hit, violations, symbols, model
