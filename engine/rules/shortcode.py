"""Decree 91 short-code commands (MO to 5656), parsed as pure functions.

    DK DNC [S|V]           register the sending number on the DNC list (both channels, or S / V)
    HUY DNC [S|V]          remove it from that channel only
    S <number> <content>   report a spam SMS;  V <number> <content>  report a spam call
    FW <content>           an advertiser's copy of its advertisement

Case- and whitespace-insensitive. `parse()` returns a `Command`; applying it (DNC change,
report append) is the pipeline's job, after the verdict.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..numbers import format_number, normalise_number

_DNC = re.compile(r"(DK|HUY)DNC(S|V|SV)?")
_REPORT = re.compile(r"\s*([SsVv])\s+(\S+)(?:\s+(.*))?\s*$", re.S)
_FW = re.compile(r"\s*[Ff][Ww](?:\s+(.*))?\s*$", re.S)


@dataclass(frozen=True)
class Command:
    symbol: str          # DNC_REGISTERED | DNC_CANCELLED | SPAM_REPORTED | AD_COPY_RECEIVED | SHORTCODE_SYNTAX_ERROR
    detail: str
    op: str | None = None            # "dnc_add" | "dnc_remove" | "report"
    channel: str | None = None
    reported: int | None = None
    kind: str | None = None          # S | V | FW
    content: str = ""


def parse(text: str, sender_num: int | None) -> Command:
    t = text or ""
    squashed = "".join(t.split()).upper()
    m = _DNC.fullmatch(squashed)
    if m:
        if sender_num is None:
            return Command("SHORTCODE_SYNTAX_ERROR", "DNC command from a sender that is not a phone number")
        ch = m.group(2) or "SV"
        who = format_number(sender_num)
        if m.group(1) == "DK":
            return Command("DNC_REGISTERED", f"{who} added to DNC {ch}", "dnc_add", ch)
        return Command("DNC_CANCELLED", f"{who} removed from DNC {ch}", "dnc_remove", ch)
    m = _REPORT.match(t)
    if m:
        n = normalise_number(m.group(2))
        if n is None:
            return Command("SHORTCODE_SYNTAX_ERROR", f"report: {m.group(2)!r} is not a phone number")
        kind = m.group(1).upper()
        content = (m.group(3) or "").strip()
        return Command("SPAM_REPORTED", f"{kind} report against {format_number(n)}", "report",
                       reported=n, kind=kind, content=content)
    m = _FW.match(t)
    if m and (m.group(1) or "").strip():
        return Command("AD_COPY_RECEIVED", "advertisement copy stored", "report", kind="FW",
                       content=m.group(1).strip())
    if squashed.startswith(("DK", "HUY")):
        return Command("SHORTCODE_SYNTAX_ERROR", f"unknown command {t.strip()[:40]!r}; use DK DNC [S|V] or HUY DNC [S|V]")
    if squashed.startswith("FW"):
        return Command("SHORTCODE_SYNTAX_ERROR", "FW needs the advertisement text: FW <content>")
    return Command("SHORTCODE_SYNTAX_ERROR",
                   f"unparseable command {t.strip()[:40]!r}; use DK DNC [S|V], HUY DNC [S|V], S <number> <content>, V <number> <content> or FW <content>")
