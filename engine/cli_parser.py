"""The `telfilter` argument parser: every command, its options and their help. Every subcommand takes --config DIR
and --data-dir DIR, before or after its own arguments, and --help. (cli.py runs what it parses.)"""
from __future__ import annotations

import argparse

from .cli_types import _at_least_one, _reload_part, _seconds, _zero_or_more, day, rate, seed


def _common(p: argparse.ArgumentParser, top=False, unused=None):
    """--config, --data-dir and -v; `unused`: why a command refuses the first two (said in its --help)."""
    d = None if top else argparse.SUPPRESS
    p.add_argument("--config", metavar="DIR", default=d,
                   help=unused or "config directory (default: the shipped config/)")
    p.add_argument("--data-dir", metavar="DIR", default=d,
                   help=unused or "list snapshots and reports (default: $TELFILTER_DATA_DIR, else "
                        "$XDG_DATA_HOME/telfilter, ~/.local/share/telfilter when that is unset, which "
                        "the first CLI use other than serve seeds with the sample lists; a directory you name is never seeded)")
    p.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="log more")


class _Version(argparse.Action):
    """`--version`: the version, then whether the optional C extensions were built (a pip install without a compiler
    falls back to pure Python and says so only under pip -v)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from . import __version__
        from .compiled import summary
        print(f"telfilter {__version__}\n{summary()}")
        parser.exit()


class _IntermixedParser(argparse.ArgumentParser):
    """A parser whose list positional (nargs "*" or "+") takes its words before, between and after the options, as
    its usage line shows them: argparse takes the words of such a positional up to the first option only, and said
    the rest were "unrecognized arguments" (`ctl reload lists --full rules`). A parser without one parses as argparse
    does (parse_intermixed_args refuses a sub-command's parser)."""

    _inner = False      # parse_known_intermixed_args calls parse_known_args itself, twice

    def parse_known_args(self, args=None, namespace=None):
        lists = any(a.nargs in ("*", "+") for a in self._get_positional_actions())
        if self._inner or not lists:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def _sub(subs, name, help, unused=None, **kw):
    p = subs.add_parser(name, help=help, description=help, **kw)
    _common(p, unused=unused)
    return p


def _ctl_common(p: argparse.ArgumentParser, top=False) -> None:
    """--socket and --timeout of `telfilter ctl`, before or after the action (`ctl stats --socket P`),
    like --config and --data-dir."""
    p.add_argument("--socket", metavar="PATH", default=None if top else argparse.SUPPRESS,
                   help="control socket (default DATA_DIR/control.sock)")
    p.add_argument("--timeout", type=_seconds, default=60.0 if top else argparse.SUPPRESS, metavar="SECONDS",
                   help="wait this long for the answer (default 60)")


def _list_edit_parsers(subs) -> None:
    """`add` and `remove` of one list entry: the same arguments offline (`lists`) and through a
    running serve (`ctl lists`)."""
    for name, h in (("add", "add one entry"),
                    ("remove", "remove one entry (senders: every registration of SENDER, or only those that match "
                               "each of --owner, --category, --valid-from, --valid-to and --accounts given)")):
        q = _sub(subs, name, h)
        q.add_argument("kind", choices=list(LIST_KINDS), help="which list")
        q.add_argument("value", help="number, brandname, domain, IP or CIDR (mlexempt: the sender's number)")
        q.add_argument("--channel", default="SV", help="dnc channel: S, V or SV (default SV)")
        q.add_argument("--owner", help="senders / consent: the advertiser")
        q.add_argument("--category", help="senders: QC or CSKH")
        q.add_argument("--valid-from", default="", help="senders: YYYY-MM-DD")
        q.add_argument("--valid-to", default="", help="senders: YYYY-MM-DD; mlexempt (add): required, the last day the "
                       "number is exempt from ML_SPAM, at most 366 days ahead")
        q.add_argument("--accounts", default="", help="senders: space-separated ESME system_ids (empty = any)")
        q.add_argument("--note", default="", help="mlexempt (add): why, one line of at most 200 characters "
                       "(a care ticket)")


# which of _list_edit_parsers' options each list takes (the rest must not be given: an option that does nothing
# is an error, not a silent no-op)
_EDIT_OPTIONS = {"dnc": ("channel",), "senders": ("owner", "category", "valid_from", "valid_to", "accounts"),
                 "blacklist": (), "consent": ("owner",), "mlexempt": ("valid_to", "note")}
_EDIT_DEFAULTS = {"channel": "SV", "owner": None, "category": None, "valid_from": "", "valid_to": "", "accounts": "",
                  "note": ""}
LIST_KINDS = ("dnc", "senders", "blacklist", "consent", "mlexempt")       # (engine.lists.KINDS, not imported here)


def list_edit_extra(args) -> list | None:
    """The list-specific fields of `lists add|remove` / `ctl lists add|remove` (None: the list has none);
    ValueError naming an option the list does not take."""
    wrong = [f"--{k.replace('_', '-')}" for k, d in _EDIT_DEFAULTS.items()
             if k not in _EDIT_OPTIONS[args.kind] and getattr(args, k, d) != d]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do{'es' if len(wrong) == 1 else ''} not apply to the {args.kind} list")
    if args.kind == "senders":
        return [args.owner or "", args.category or "", args.valid_from, args.valid_to, args.accounts]
    if args.kind == "consent":
        return [args.owner or ""]
    if args.kind == "mlexempt":
        return [args.valid_to, args.note]
    return None


# the dest of each command's ACTION (`ctl lists`: and of its OP): the words that name a command in its messages
_ACTION_DEST = {"lists": "lcmd", "config": "ccmd", "rules": "rcmd", "ml": "mcmd", "reports": "rcmd", "ctl": "ctlcmd"}


def command_name(args) -> str:
    """The command `args` runs, named as argparse names it in a usage error: "serve", "lists import",
    "ctl lists add"."""
    words = [args.cmd]
    action = getattr(args, _ACTION_DEST.get(args.cmd, ""), None)
    if action:
        words.append(action)
    if words == ["ctl", "lists"] and getattr(args, "lop", None):
        words.append(args.lop)
    return " ".join(words)


def command_error(args, why: str) -> str:
    """An error line of the command `args` runs, as argparse says its usage errors: `telfilter CMD: error: why`
    (one convention for every command: they said `telfilter: error:`, `telfilter check:`, `telfilter serve:`, ...)."""
    return f"telfilter {command_name(args)}: error: {why}"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="telfilter", description="Inline SMS (SMPP) and call (SIP) filtering engine: "
                                 "Do-Not-Call lists, brandname registry, Decree 91 rules and an ML spam classifier.")
    _common(ap, top=True)
    from . import __version__
    ap.add_argument("--version", action=_Version, nargs=0, default=argparse.SUPPRESS,
                    help=f"print the version ({__version__}) and which compiled paths are not built, and exit")
    subs = ap.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    p = _sub(subs, "check", "judge messages and calls; print one JSON verdict per input")
    p.add_argument("--jsonl", metavar="IN", help="JSONL input, one message or call per line ('-' = stdin)")
    p.add_argument("--out", metavar="OUT", default="-", help="output file ('-' = stdout, the default)")
    p.add_argument("--sender", help="one SMS: sender (brandname or number)")
    p.add_argument("--recipient", help="one SMS: recipient number")
    p.add_argument("--text", help="one SMS: text")
    p.add_argument("--time", help="ISO-8601 time with offset (default: now)")
    # no defaults here: cmd_check refuses both with --jsonl (each line has its own), as it does --sender
    p.add_argument("--account", help="one SMS: ESME system_id it came from (default: none)")
    p.add_argument("--direction", choices=["mt", "mo"],
                   help="one SMS: mt (from an ESME to a subscriber) or mo (from a subscriber); not given: mo to the "
                        "short code (a 5656 command, applied to the data dir as serve applies it: a DK/HUY DNC to "
                        "its DNC list, an S/V/FW report appended to its reports.jsonl, which SENDER_REPORTED and "
                        "`report --reports` count; try report syntax on a copy of the data dir), mt to any other "
                        "recipient, as a --jsonl line without \"direction\"")

    p = _sub(subs, "lists", "import, export, edit and count the DNC, sender, blacklist, consent and ML exemption "
             "(mlexempt) lists")
    ls = p.add_subparsers(dest="lcmd", metavar="ACTION", required=True)
    q = _sub(ls, "import", "import a CSV (good rows are imported, bad rows reported with line numbers)")
    q.add_argument("kind", choices=list(LIST_KINDS), help="which list")
    q.add_argument("file", help="CSV file ('-' = stdin)")
    q.add_argument("--replace", action="store_true",
                   help="replace the list instead of adding to it (refused, changing nothing, if any row is bad or there are none)")
    q.add_argument("--allow-partial", action="store_true",
                   help="with --replace: replace the list with the good rows even if some rows are bad (or empty it)")
    _list_edit_parsers(ls)
    q = _sub(ls, "export", "write a list in its CSV import format (blacklist: also as a published list)")
    q.add_argument("kind", choices=list(LIST_KINDS), help="which list")
    q.add_argument("--out", default="-", help="file ('-' = stdout, the default)")
    q.add_argument("--format", default="csv", choices=["csv", "rbldnsd", "hosts", "json"],
                   help="blacklist only: csv (import format, the default), rbldnsd (DNSBL zone), hosts or json; "
                        "all but csv carry generation time and a SHA-256")
    _sub(ls, "stats", "print list sizes as JSON")

    p = _sub(subs, "config", "validate configuration files")
    cs = p.add_subparsers(dest="ccmd", metavar="ACTION", required=True)
    q = _sub(cs, "check", "validate telfilter.toml, smpp.toml, sip.toml and rules/ as serve would load them; "
             "errors as path:line:col, exit 2 on any")
    q.add_argument("dir", nargs="?", help="config directory (default: --config, or the shipped config/)")
    q.add_argument("--strict", action="store_true",
                   help="exit 1 on warnings (rules that load but never take effect, a secrets file others can read, "
                        "a --state server not ready)")
    q.add_argument("--esme-accounts-file", metavar="FILE", default=None,
                   help="also check serve's --esme-accounts-file (its lines, duplicates, TLS identities; no password is "
                        "ever printed)")
    q.add_argument("--smsc-password-file", metavar="FILE", default=None, help="also check serve's --smsc-password-file")
    q.add_argument("--state", metavar="URL", default=None,
                   help="also check serve's --state redis://… server (default: $TELFILTER_STATE): reachable, "
                        "authenticated, the commands the "
                        "shared store needs allowed, a primary, its eviction policy and persistence (redis+sentinel://…: the "
                        "sentinels, and the primary they name)")

    p = _sub(subs, "rules", "validate, test and compare rule files")
    rs = p.add_subparsers(dest="rcmd", metavar="ACTION", required=True)
    q = _sub(rs, "check", "validate rule files and run their examples; errors as path:line:col")
    q.add_argument("dir", nargs="?", help="rules directory (default: CONFIG/rules)")
    q.add_argument("--no-examples", action="store_true", help="only validate, do not run examples")
    q.add_argument("--strict", action="store_true", help="exit 1 on warnings (what loads but never takes effect)")
    q = _sub(rs, "test", "what-if: replay a corpus under edited rules and a baseline, report changed verdicts")
    q.add_argument("--corpus", required=True, help="JSONL corpus (the `check` input format)")
    q.add_argument("--rules", dest="rules_dir", help="edited rules directory (default: CONFIG/rules)")
    q.add_argument("--baseline", help="baseline rules directory (default: CONFIG/rules, the rules in force, when --rules names another "
                   "directory; else the shipped rules)")
    q.add_argument("--examples", type=_zero_or_more, default=3, help="examples shown per symbol (default 3; 0: none)")

    p = _sub(subs, "ml", "train, evaluate and run the spam classifier")
    ms = p.add_subparsers(dest="mcmd", metavar="ACTION", required=True)
    q = _sub(ms, "train", "train a model from labelled data (TSV, CSV, JSONL, reports.jsonl)")
    q.add_argument("--data", action="append", required=True, help="labelled file (repeatable)")
    q.add_argument("--out", help="model directory to write (default: DATA_DIR/models/<model_version>, a new "
                   "candidate beside the served one; the path is printed)")
    q.add_argument("--target-blocked-ham", type=rate, default=0.001, help="blocked-ham rate the drop threshold aims at (default 0.001)")
    q.add_argument("--seed", type=seed, default=42, help="random seed for splits and training (default 42)")
    q.add_argument("--no-progress", action="store_true", help="do not print training progress")
    q = _sub(ms, "eval", "evaluate a model; print metrics JSON; --report writes plots")
    q.add_argument("--model", help="model directory (default: the one serve loads: [ml] model, else the bundled one)")
    q.add_argument("--data", action="append", required=True, help="labelled file (repeatable)")
    q.add_argument("--report", help="directory for PNG plots and a markdown summary")
    q = _sub(ms, "predict", "score texts")
    q.add_argument("--model", help="model directory (default: the one serve loads, with its thresholds: [ml] "
                   "model, else the bundled one)")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--text", help="one text to score (an empty one is refused, exit 2)")
    g.add_argument("--jsonl", help="JSONL with a `text` field ('-' = stdin; a line whose text is empty gets an "
                   "error record, a blank line is skipped)")
    q.add_argument("--explain", type=int, nargs="?", const=5, default=None, metavar="N",
                   help="add the N words (default 5) whose leaving out moves the score most, either way: "
                   '"explain": [{"word", "logit", "probability"}], the change each makes (positive: towards spam)')
    q.add_argument("--sender", help="with --text: the sender's number, to add its row on the data dir's mlexempt "
                   'list: "ml_exempt": {"number", "valid_to", "note", "in_force"} (null: none; serve lets an exempt '
                   "sender's messages through, ML_EXEMPT); with --jsonl, each line's \"sender\"")
    from .ml.analyst_cli import add_analyst_parsers
    add_analyst_parsers(ms, _sub)
    from .ml.cv import add_parser as add_cv_parser
    add_cv_parser(ms, _sub)

    from .analyst.cli import add_parser as add_reports_parser
    add_reports_parser(subs, _sub)

    p = _sub(subs, "serve", "run the SMPP proxy and SIP screen")
    p.add_argument("--smpp-listen", default=None, metavar="HOST:PORT",
                   help="SMPP listen address for ESMEs (default: smpp.toml [server] listen, shipped as 0.0.0.0:2775)")
    p.add_argument("--smsc", metavar="HOST:PORT[,HOST:PORT...]", help="upstream SMSC(s)")
    p.add_argument("--smsc-system-id", default=None, help="system_id we bind to the SMSC with (default: smpp.toml)")
    p.add_argument("--smsc-password", default=None,
                   help="password we bind to the SMSC with (visible in ps: prefer --smsc-password-file or "
                        "$TELFILTER_SMSC_PASSWORD; default: smpp.toml)")
    p.add_argument("--smsc-password-file", metavar="FILE", default=None,
                   help="file whose first line is the SMSC password (mode 600)")
    p.add_argument("--esme-account", action="append", default=[], metavar="SYSTEM_ID:PASSWORD",
                   help="add an ESME account with default limits (repeatable; visible in ps: prefer "
                        "--esme-accounts-file or $TELFILTER_ESME_ACCOUNTS)")
    p.add_argument("--esme-accounts-file", metavar="FILE", default=None,
                   help="ESME accounts with default limits, one SYSTEM_ID:PASSWORD a line, optionally followed by "
                        "tls_client_subject=SUBJECT and/or tls_client_sha256=FINGERPRINT (as smpp.toml's [[account]]: "
                        "binds over the TLS listener with that client certificate only), '#' comments (mode 600)")
    p.add_argument("--sip-listen", default=None, metavar="HOST:PORT",
                   help="SIP UDP+TCP listen address, 'off' to disable (default: sip.toml listen, shipped as 0.0.0.0:5060)")
    p.add_argument("--sip-next-hop", metavar="IP:PORT[;transport=tcp]",
                   help="where screened INVITEs go when there is no Route (as sip.toml's next_hop)")
    p.add_argument("--sip-allow-networks", default=None, help="comma-separated networks the screen may send to; a next "
                   "hop must be inside them (default: sip.toml allow_networks)")
    p.add_argument("--log", default="-",
                   help="verdict log (JSON lines; '-' = stdout, the default); reopened on SIGUSR2 (logrotate)")
    p.add_argument("--events", metavar="ENDPOINT", help="also publish verdicts on a ZeroMQ PUB socket, e.g. tcp://127.0.0.1:5557")
    p.add_argument("--ready-file", help="write this file (its ports, one per line) once listening, remove it on stop (for scripts)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="service log (stderr) format: text lines or one JSON object per line (default text)")
    p.add_argument("--drain-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, serve drains within this time: submits already sent to the SMSC are "
                        "answered by it, or with ESME_RSYSERR at the deadline; ESMEs and SMSCs are unbound; then it "
                        "writes its message-id map and receipts journal (up to ~0.5 s more) and exits (default 10)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus /metrics, /healthz, /readyz and /livez over HTTP here (e.g. 127.0.0.1:9464)")
    p.add_argument("--state", metavar="URL", default=None,
                   help="where counters, recipient history and call durations live (default: $TELFILTER_STATE, which "
                        "keeps a password off the command line, else embedded, "
                        "journalled in DATA_DIR/state, durable across kill -9; redis://HOST:PORT/DB[?on_error=open|closed] "
                        "(rediss:// TLS, unix:///PATH?db=DB a Unix socket, redis+sentinel://H1:26379,H2,…/SERVICE/DB through "
                        "Sentinel, following a failover): "
                        "counters shared by every serve pointing at it, DNC changes replicated)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N processes on the same SMPP port (SO_REUSEPORT), SIP in worker 0 alone, restarted when one dies; "
                        "N > 1 needs --state redis://… (default 1)")
    p.add_argument("--start-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                   help="with --workers N: a worker not ready (listening, its state loaded) this long after its start "
                        "is killed (SIGABRT, SIGKILL 5 s later) and restarted, at the first start as after a restart "
                        "(default 60)")
    p.add_argument("--control-socket", metavar="PATH", default=None,
                   help="Unix socket for `telfilter ctl` (mode 0600, serve user or root only; "
                        "default DATA_DIR/control.sock; 'off' to disable)")

    p = _sub(subs, "ctl", "control a running serve over its Unix socket: reload, stats, drain, lists add|remove (JSON out)")
    _ctl_common(p, top=True)
    cs = p.add_subparsers(dest="ctlcmd", metavar="ACTION", required=True, parser_class=_IntermixedParser)
    q = _sub(cs, "reload", "reload rules, lists, model, ESME accounts (smpp.toml, --esme-accounts-file; with them the "
             "TLS listener's certificate, key, client CA and client CRL files) and sip.toml; each part is validated "
             "whole: a refused one is reported as path:line:col and its old version kept; rules put in force say what "
             "changed (symbols added, removed, changed, enabled, disabled; [actions] thresholds)")
    from .control_reload import RELOAD_PARTS
    q.add_argument("parts", nargs="*", metavar="PART", type=_reload_part,
                   help=f"what to reload: {', '.join(RELOAD_PARTS)} (default: all of them, each part's result reported)")
    q.add_argument("--full", action="store_true", help="lists: read every list again (default: only the lists whose "
                   "snapshot files changed since the lists in force were read; the others are kept as they are)")
    _ctl_common(q)
    q = _sub(cs, "stats", "SMPP and SIP counters, list sizes, rules generation, model version")
    q.add_argument("--pool", action="store_true", help="a `serve --workers N` pool: every worker's stats and their "
                   "SMPP and SIP counters summed (`pool`); exit 1 when a worker does not answer (partial figures)")
    _ctl_common(q)
    _ctl_common(_sub(cs, "drain", "stop serve gracefully, as SIGTERM"))
    q = _sub(cs, "lists", "change a list through the running serve (in force at once, journalled/saved by serve)")
    lo = q.add_subparsers(dest="lop", metavar="OP", required=True)
    _list_edit_parsers(lo)
    for q in lo.choices.values():
        _ctl_common(q)

    p = _sub(subs, "report", "the regulator's report from verdict logs: summary.json, CSV tables, plots, report.html")
    p.add_argument("--log", nargs="+", action="extend", required=True, metavar="FILE", help="verdict logs (plain, .gz, .bz2, .xz; rotated ones too; '-' = stdin; "
                   "DATA_DIR/lists/changes.jsonl too: the offline `lists` changes, counted in list_changes)")
    p.add_argument("--reports", metavar="FILE", help="5656 report store (DATA_DIR/reports.jsonl); default: report hits in the logs")
    p.add_argument("--from", dest="date_from", type=day, metavar="DATE", help="first day (YYYY-MM-DD, a day in the [engine] timezone of "
                   "--config, not the machine's), inclusive")
    p.add_argument("--to", dest="date_to", type=day, metavar="DATE", help="last day (YYYY-MM-DD, [engine] timezone), inclusive")
    p.add_argument("--out", default="report", metavar="DIR", help="output directory (default ./report)")
    p.add_argument("--period", default="day", choices=["day", "week", "month"], help="time series step (default day)")
    p.add_argument("--top", type=_at_least_one, default=20, help="rows in the top-senders and top-owners tables (default 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    from .report.find import add_parser as add_verdicts_parser
    add_verdicts_parser(subs, _sub)

    p = _sub(subs, "demo", "start serve on embedded defaults with an SMSC simulator, send a mixed set, print what happened")
    p.add_argument("--keep-data", action="store_true", help="keep the demo's temporary data dir (the demo always "
                   "runs on a temporary data dir seeded with the sample lists; --data-dir is not used)")

    p = _sub(subs, "bench", "run the capacity-planning benchmark suite (python -m benchmarks)",
             unused="refused (exit 2): bench measures the shipped config/ on data it makes for each run")
    p.add_argument("--quick", action="store_true", help="the ~2-minute run (smaller loads, fewer repeats); without "
                   "it the full run, ≤ 20 minutes, which installs Kamailio with apt-get when it is missing "
                   "(redis-server too, either run)")
    p.add_argument("--out", help="results directory (default: benchmarks/results/<timestamp> beside the installed "
                   "benchmarks package)")
    p.add_argument("--skip", action="append", default=[],
                   choices=["pipeline", "lists", "longrun", "smpp", "sip", "sip_flood", "state"],
                   help="leave this step out (repeatable)")
    from .cli_examples import add_examples
    add_examples(ap)
    return ap
