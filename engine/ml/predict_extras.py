"""What `telfilter ml predict` adds to a text's score: the words that moved it (--explain), and, given the sender
(--sender, or a --jsonl line's "sender"), its row on the data dir's mlexempt list (engine/lists/mlexempt.py), so
the care desk asked about a dropped message sees both the classifier's reading and whether an exemption lets the
subscriber's messages through: {"ml_exempt": {"number", "valid_to", "note", "in_force"}}, in force meaning today,
in the [engine] timezone, is not past its valid_to (as serve reads it against a message's local day)."""
from __future__ import annotations

from datetime import datetime


def explained(sc, text: str, top: int) -> dict:
    """{"explain": [...]}, or {"explain_error": why} for a text it cannot explain (its score is given all the same)."""
    from .explain import TooLong, explain
    try:
        return {"explain": explain(sc, text, top)}
    except TooLong as e:
        return {"explain_error": str(e)}


class Exemptions:
    """The mlexempt list of the data dir `args` names, read at the first sender asked about."""

    def __init__(self, args):
        self.args, self.list, self.today = args, None, None

    def of(self, sender) -> dict:
        """{"ml_exempt": the sender's row, or None when it has none}; {} when no sender is given."""
        if not isinstance(sender, str) or not sender.strip():
            return {}
        from ..lists.mlexempt import in_force
        from ..numbers import format_number, normalise_number
        if self.list is None:
            self._read()
        n = normalise_number(sender)
        e = self.list.get(n) if n is not None else None
        if e is None:
            return {"ml_exempt": None}
        return {"ml_exempt": {"number": format_number(n), "valid_to": e.valid_to.isoformat(), "note": e.note,
                              "in_force": in_force(e, self.today)}}

    def _read(self) -> None:
        from ..app import resolve_data_dir
        from ..config import load_settings
        from ..lists import ListStore
        s = load_settings(getattr(self.args, "config", None))
        self.list = ListStore(resolve_data_dir(getattr(self.args, "data_dir", None), s)).load(
            kinds=("mlexempt",)).ml_exempt
        self.today = datetime.now(s.tz).date()
