"""How many reloads of each part serve reloads (rules, lists, model, accounts, sip) were put in force or refused:
/metrics' `telfilter_reloads_total{part, result}` and `ctl stats`' `reloads`. A refused reload keeps the old version
in force and logs why; without a count per part the NOC could alert on rules and lists only (their own metrics), and a
refused model, accounts or sip.toml reload was seen in the service log alone."""
from __future__ import annotations

PARTS = ("rules", "lists", "model", "accounts", "sip")
RESULTS = ("ok", "refused")


def count_reload(pipe, part: str, ok: bool) -> None:
    """One reload of `part` ended: put in force (ok) or refused (the old version kept)."""
    counts = getattr(pipe, "reload_counts", None)
    if counts is None:
        counts = pipe.reload_counts = {p: dict.fromkeys(RESULTS, 0) for p in PARTS}
    counts[part]["ok" if ok else "refused"] += 1


def reload_counts(pipe) -> dict:
    """{part: {"ok": n, "refused": n}} for every part, zeros included (an alert needs the series before the first)."""
    counts = getattr(pipe, "reload_counts", None) or {}
    return {p: dict(counts.get(p) or dict.fromkeys(RESULTS, 0)) for p in PARTS}
