"""Examples at the foot of `telfilter --help` and of the commands whose input format or first use is not obvious
from the options alone (found by the CLI audit: no --help showed an example, and `lists import --help` did not
name the header a CSV must start with). tests/test_cli_examples.py parses every example line."""
from __future__ import annotations

import argparse
import shlex

EXAMPLES = {
    (): None,                           # built from the install's sample path (top_examples)
    ("check",): """examples:
  telfilter check --sender VNBANK --recipient 0912345678 --text "Ma OTP 482913" --time 2026-11-28T09:15:00+07:00
  telfilter check --jsonl msgs.jsonl --out verdicts.jsonl
a --jsonl line (see README, "check --jsonl input and output"):
  {"id": "m1", "kind": "sms", "sender": "VNBANK", "recipient": "0912345678", "text": "...", "time": "2026-11-28T09:15:00+07:00"}
  {"id": "c1", "kind": "call", "caller": "0987000666", "callee": "0912345678", "time": "2026-11-28T09:20:00+07:00"}""",
    ("lists", "import"): None,          # built from the loader's headers (lists_import_examples)
    ("lists", "add"): """examples:
  telfilter lists add dnc 0912345678 --channel S
  telfilter lists add senders SHOPABC --owner "Shop ABC" --category QC --valid-to 2030-12-31
  telfilter lists add blacklist 192.0.2.0/24
  telfilter lists add mlexempt 0987654321 --valid-to 2027-03-31 --note "CSKH-48213 invitations dropped as spam"
(mlexempt: the care desk's remedy for a classifier false positive: the number's SMS are not dropped or tagged as
ML_SPAM until --valid-to, required and at most 366 days ahead; their verdicts say ML_EXEMPT. Lists, registry and
rules still judge them; every change saved, an import too, is one audit line of DATA_DIR/lists/changes.jsonl, who and
when: `telfilter verdicts --log verdicts.jsonl --log DATA_DIR/lists/changes.jsonl --number N` shows it)""",
    ("ml", "predict"): """examples:
  telfilter ml predict --text "Chuc mung ban trung thuong iPhone 15, soan NHAN gui 8x77" --explain
  telfilter ml predict --text "Thiep moi dam cuoi ..." --sender 0987654321 --explain 3
(--sender adds the number's mlexempt row, "ml_exempt": {"valid_to", "note", "in_force", ...}, or null: whether
serve lets its messages through the classifier)""",
    ("ml", "train"): """examples:
  telfilter ml train --data labelled.tsv --data more.csv
formats (label spam or ham, or 1 / 0; optional columns kind and lang):
  TSV    label<TAB>text lines, or a header row naming the columns
  CSV    a header row naming the columns, or label,text rows
  JSONL  {"label": "spam", "text": "Chuc mung thue bao trung thuong ..."}
  reports.jsonl (the 5656 report store), with the labels of labels.jsonl beside it""",
    ("ctl", "lists", "add"): """examples (through the running serve: in force for the next message once answered):
  telfilter ctl lists add blacklist 0901555666
  telfilter ctl lists add dnc 0912345678 --channel S
  telfilter ctl lists add senders VCBANK --owner "Vietcom Bank" --category CSKH --valid-from 2026-12-01 --valid-to 2027-12-31 --accounts "bank1 bank2"
  telfilter ctl lists add mlexempt 0987654321 --valid-to 2027-03-31 --note "CSKH-48213"
(a blacklist takes whole numbers, domains, IP addresses and networks, no number prefixes; a sender registered
again by its owner for the same dates replaces that row: `telfilter lists export senders` shows the rows)""",
    ("ctl", "lists", "remove"): """examples:
  telfilter ctl lists remove blacklist 0901555666
  telfilter ctl lists remove senders VCBANK --valid-to 2026-11-30
  telfilter ctl lists remove mlexempt 0987654321
(the second takes out only VCBANK's registration that ended 2026-11-30, not its renewal)""",
    ("ctl", "reload"): """examples:
  telfilter ctl reload
  telfilter ctl reload rules lists
  telfilter ctl reload lists --full
(a lists reload reads again only the lists whose snapshot files changed; --full reads every one)""",
    ("verdicts",): """examples:
  telfilter verdicts --log /var/log/telfilter/verdicts.jsonl* --number "0912 345 678" --from 2026-12-01
  telfilter verdicts --log verdicts.jsonl --number 0912345678 --symbol ML_SPAM --action drop
  zcat archive/verdicts-2026-11-*.gz | telfilter verdicts --log - --sender SHOPABC --symbol AD_TO_DNC
  telfilter verdicts --log /var/log/telfilter/verdicts.jsonl* --message-id 0A1B2C3D
  telfilter verdicts --log verdicts.jsonl --log DATA_DIR/lists/changes.jsonl --number 0912345678
(a forwarded SMS's line shows its SMSC message_ids, and --message-id finds it, with [upstream] log_message_ids = true
in smpp.toml; a change of a number's dnc, blacklist, consent or mlexempt row made with `ctl lists` on a running serve
is a "list" line, found by --number as its number, with who made it, and so is one made offline with `telfilter
lists`, in DATA_DIR/lists/changes.jsonl; the logs are read merged by time)""",
    ("report",): """examples:
  telfilter report --log /var/log/telfilter/verdicts.jsonl* --from 2026-11-01 --to 2026-11-30 --out nov
  zcat archive/verdicts-2026-10-*.gz | telfilter report --log - --period week --out oct
inputs:
  --log      the JSON lines serve --log writes, one a message or call (check's output has no "ts": no verdict log):
    {"ts": "2026-11-03T09:12:44+00:00", "kind": "sms", "action": "drop", "hits": [{"symbol": "SENDER_BLACKLISTED"}]}
  --reports  the 5656 report store, DATA_DIR/reports.jsonl:
    {"reporter": "+84911000004", "reported": "+84987000666", "kind": "S", "time": "2026-11-03T09:12:44+00:00"}
days, weeks (from Monday) and months are counted in the [engine] timezone of --config""",
}


def top_examples() -> str:
    # the sample's path as installed: `config/sample/...` exists only in a source checkout, so that example failed
    # ("No such file or directory") for anyone who ran it after `pip install .`, from any other directory
    from .config import shipped_config_dir
    sample = shipped_config_dir() / "sample" / "messages.jsonl"
    return f"""examples (a first look on the shipped config and sample lists):
  telfilter check --sender SHOPABC --recipient 0912345678 --text "[QC] Giam 30% cuoi tuan"
  telfilter check --jsonl {shlex.quote(str(sample))}
  telfilter config check /etc/telfilter
  telfilter lists stats
  telfilter serve --smsc 10.0.0.5:2775 --esme-accounts-file /etc/telfilter/esme.accounts
  telfilter COMMAND --help"""


def lists_import_examples() -> str:
    from .lists.csvio import HEADERS
    from .lists.mlexempt import HORIZON_DAYS, NOTE_MAX
    return ("examples:\n  telfilter lists import dnc dnc.csv\n  telfilter lists import senders senders.csv --replace\n"
            "each file starts with its header row (UTF-8; see README, List CSV formats):\n"
            + "\n".join(f"  {kind:<10} {','.join(h)}" for kind, h in HEADERS.items())
            + f"\n(mlexempt: valid_to YYYY-MM-DD required, at most {HORIZON_DAYS} days ahead; note one line, at most "
            f"{NOTE_MAX} characters)")


# the examples built when the parser is: they name what only then is known (the install's paths, the loader's headers)
_BUILT = {(): top_examples, ("lists", "import"): lists_import_examples}


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped as usual; an example block (text with line breaks) kept as written."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(True))
        return super()._fill_text(text, width, indent)


def _find(ap: argparse.ArgumentParser, path: tuple) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
        ap = sub.choices[name]
    return ap


def add_examples(ap: argparse.ArgumentParser) -> None:
    for path, text in EXAMPLES.items():
        p = _find(ap, path)
        p.epilog = text if text is not None else _BUILT[path]()
        p.formatter_class = _Formatter
