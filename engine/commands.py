"""Handlers of the data subcommands of `telfilter`: check, lists, config check, rules. The parser is
cli_parser.py's; the dispatch and the error-to-exit-status mapping stay in cli.py."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from . import durable
from .cli_checks import absent_data_dir_note
from .cli_parser import command_error

log = logging.getLogger("telfilter")


class _Out:
    """`--out FILE`, written whole or not at all: the text goes to a temporary file beside FILE, which replaces
    FILE (fsynced) only when the command finished without an exception; a failure part-way leaves FILE
    as it was (a published zone or an earlier run's verdicts are never truncated). stdout, a FIFO or a
    device is written directly. FILE a symbolic link: the file it names is replaced (durable.output_target), as
    `reports export --out` does; the temporary file is created, never opened through a link (durable.create_new)."""

    def __init__(self, path):
        self.path, self.tmp, self.made = path, None, None
        if path in (None, "-"):
            self.f = sys.stdout
        elif os.path.exists(path) and not os.path.isfile(path):
            self.f = open(path, "w", encoding="utf-8")
        else:
            p = self.target = durable.output_target(path)
            self.tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
            try:
                self.made = durable.make_parent(p)      # as every other output file's directory is made
                self.f = os.fdopen(durable.create_new(self.tmp), "w", encoding="utf-8")
            except OSError as e:        # named as given: the temporary file is ours, not a name the user wrote
                durable.remove_made(p, self.made)
                raise OSError(e.errno, e.strerror, str(path)) from None

    def __enter__(self):
        return self.f

    def __exit__(self, exc_type, exc, tb):
        if self.f is sys.stdout:
            self.f.flush()
            return False
        if self.tmp is None:
            self.f.close()
            return False
        try:
            if exc_type is None:
                self.f.flush()
                os.fsync(self.f.fileno())
            self.f.close()
            if exc_type is None:
                os.replace(self.tmp, self.target)
                durable.fsync_dir(self.target.parent)     # the rename durable too, as durable.replace_file makes it
        except OSError as e:
            exc = e
        finally:
            self.tmp.unlink(missing_ok=True)
            if exc is not None:             # nothing written: nor the directory made for it
                durable.remove_made(self.target, self.made)
        if isinstance(exc, OSError) and not exc.filename:     # a write to the temporary file (a full disk): named
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None      # as given, as a failed open is
        if exc is not None and exc_type is None:
            raise exc
        return False


def cmd_check(args) -> int:
    from .app import build
    from .jsonl import NOT_JSON_ID, dumps_line, echoed_id, error_line, loads, not_json, numbered, open_jsonl, progress_bar
    from .records import RecordError, parse_input_record
    if not args.jsonl and args.sender is None:
        print(command_error(args, "give --jsonl FILE, or --sender/--recipient/--text for one message"), file=sys.stderr)
        return 2
    one = [f"--{k}" for k in ("sender", "recipient", "text", "time", "account", "direction")
           if getattr(args, k) is not None]
    if args.jsonl and one:
        print(command_error(args, f"{', '.join(one)} given with --jsonl: the options for one message and a JSONL "
                            "input exclude each other"), file=sys.stderr)
        return 2
    m = None
    if not args.jsonl:
        try:
            m = _one_message(args)
        except RecordError as e:
            print(command_error(args, e), file=sys.stderr)
            return 2
    say_absent = absent_data_dir_note(args)
    pipe = build(args.config, args.data_dir)
    say_absent()
    with _Out(args.out) as out:
        if m is not None:
            out.write(json.dumps(pipe.judge(m).to_json(None), ensure_ascii=False) + "\n")
            return 0
        # a line that is not UTF-8 or not JSON gets an error record, not the whole run stopping (jsonl.py)
        failed = 0                          # lines the pipeline failed on (a defect): exit status 1
        # a bar only when the verdicts do not go to the terminal too (a million lines take minutes)
        bar = None if out is sys.stdout and sys.stdout.isatty() else progress_bar(args.jsonl, "judging")
        try:
            with open_jsonl(args.jsonl) as inp:
                for n, line in numbered(inp, bar):
                    obj = rid = None
                    try:
                        obj = loads(line)
                        rid = echoed_id(obj)
                        if isinstance(obj, dict) and not_json(obj.get("id")):
                            raise RecordError(NOT_JSON_ID)
                        rec = parse_input_record(obj)
                    except (ValueError, RecursionError) as e:     # LineError, RecordError and their kin
                        msg = "nested too deeply" if isinstance(e, RecursionError) else str(e)
                        out.write(error_line(n, echoed_id(obj, e), msg))
                        continue
                    try:
                        v = pipe.judge(rec)
                    except Exception as e:         # a defect must not cost the verdicts of the lines before and after
                        failed += 1
                        log.exception("check: line %d could not be judged", n)
                        out.write(error_line(n, rid, f"internal error: {type(e).__name__}: {e}"))
                        continue
                    d = {"id": rid}
                    d.update(v.to_json())
                    if rec.kind == "sms" and (rec.sender_ton or rec.recipient_ton):
                        _read_by_ton(d, rec)
                    out.write(dumps_line(d, n))
        finally:        # Ctrl-C or an error too: the bar is taken down before anything is said below it
            if bar is not None:
                bar.close()
        return 1 if failed else 0


def _one_message(args):
    """The one message --sender, --recipient, --text (and --time, --account, --direction) name, else RecordError
    saying what is missing: a usage error, said before the lists load and before --out is touched (it was said
    after: --out FILE was replaced by an empty file)."""
    from datetime import datetime, timezone
    from .records import RecordError, parse_time
    from .verdict import Message
    if args.recipient is None or args.text is None:
        raise RecordError("one message needs --sender, --recipient and --text")
    if args.text == "":             # (a script's empty variable: judged, an allow that said nothing of the text)
        raise RecordError("--text is empty: one message needs its text")
    t = parse_time(args.time) if args.time else datetime.now(timezone.utc)
    # no --direction: not said, as a --jsonl line without one (verdict.Message: a command to the short code)
    return Message(args.sender, args.recipient, args.text, t, args.account or "", args.direction)


def _read_by_ton(d: dict, rec) -> None:
    """Name in `d` an address its record's type of number read otherwise than its digits alone would, as the
    SMPP verdict log does ("recipient_read": "+2439998888")."""
    from .numbers import format_number, read_by_ton
    for side in ("sender", "recipient"):
        num = read_by_ton(getattr(rec, side), getattr(rec, side + "_ton"))
        if num is not None:
            d[side + "_read"] = format_number(num)


def cmd_lists(args) -> int:
    from .app import resolve_data_dir
    from .config import load_settings
    from .lists import ImportRefused, ListStore
    from .lists.csvio import bad_rows
    say_absent = absent_data_dir_note(args)
    settings = load_settings(getattr(args, "config", None))
    store = ListStore(resolve_data_dir(getattr(args, "data_dir", None), settings), settings.tz)
    # each change saved: a line of DATA/lists/changes.jsonl; under sudo, the operator who ran it too
    store.audit_by = f"cli uid {os.getuid()}" + (f" sudo {os.environ['SUDO_USER']}" if os.environ.get("SUDO_USER")
                                                 else "")
    say_absent()
    if args.lcmd == "import":
        if args.allow_partial and not args.replace:
            print(command_error(args, "--allow-partial only applies with --replace (without it the good rows are "
                                "added and the bad ones reported anyway)"), file=sys.stderr)
            return 2
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        name = "<stdin>" if args.file == "-" else args.file
        try:
            n, errors = store.import_csv(args.kind, data, name, replace=args.replace, allow_partial=args.allow_partial)
        except ImportRefused as e:
            _print_row_errors(name, e.errors)
            _print_warnings(store)
            print(command_error(args, e), file=sys.stderr)
            print(json.dumps({"imported": 0, "errors": bad_rows(e.errors), "kind": args.kind, "refused": True}))
            return 1
        _print_row_errors(name, errors)
        _print_warnings(store)
        # the list as it stands after (stats' figures): good rows that repeat a number already there add nothing
        unaudited = _audit_failed(args, store)
        print(json.dumps({"imported": n, "errors": bad_rows(errors), "kind": args.kind,
                          "list": store.load(kinds=(args.kind,)).stats(store.today())[args.kind]}))
        return 1 if errors or unaudited else 0
    if args.lcmd in ("add", "remove"):
        from .cli_parser import list_edit_extra
        try:
            extra = list_edit_extra(args)
            if args.lcmd == "add":
                stored, replaced, left = store.add_replacing(args.kind, args.value, args.channel, extra)
                _print_warnings(store)
                if left:
                    from .lists.mlexempt import expired_left
                    print(f"telfilter: warning: {expired_left(left)}", file=sys.stderr)
                unaudited = _audit_failed(args, store)
                print(json.dumps({"added": args.value, "kind": args.kind, "stored": stored,
                                  **({"replaced": replaced} if replaced else {})}))
                return 1 if unaudited else 0
            found, rows = store.remove_listing(args.kind, args.value, args.channel, extra)
        except ValueError as e:
            print(command_error(args, e), file=sys.stderr)
            return 2
        _print_warnings(store)
        unaudited = _audit_failed(args, store, found)
        print(json.dumps({"removed": args.value, "kind": args.kind, "found": found, **({"rows": rows} if rows else {})}))
        return 0 if found and not unaudited else 1
    if args.lcmd == "export":
        if args.format != "csv" and args.kind != "blacklist":
            print(command_error(args, f"--format {args.format} is for the blacklist only"), file=sys.stderr)
            return 2
        with _Out(args.out) as out:
            if args.format != "csv":
                from .lists.publish import write_blacklist
                write_blacklist(store.load(), args.format, out)
                _print_warnings(store)
            else:
                store.export(args.kind, out)
                _print_warnings(store)  # an export from the previous snapshot, or without unreadable journal lines
        return 0
    if args.lcmd == "stats":
        L = store.load()
        _print_warnings(store)
        print(json.dumps(L.stats(store.today()), indent=2))
        return 0
    return 1


def _audit_failed(args, store, found: bool = True) -> bool:
    """Whether the change just saved has no audit line in DATA/lists/changes.jsonl (lists/changes.py), said as a
    warning: the change stands (it is in force; undoing it would lose the operator's intent), the exit status is 1
    as for anything done with something left out (a script sees it; doing the change again is harmless)."""
    e = store.audit_error
    if e is None:
        return False
    what = "the change was saved" if found else "nothing was listed to remove"
    print(f"telfilter lists {args.lcmd}: warning: {what}, but its audit record was not written to "
          f"{e.filename or store.changes_path}: {e.strerror or e}", file=sys.stderr)
    return True


def _print_row_errors(name, errors) -> None:
    for e in errors:
        print(f"{name}:{e.line}: {e.message}", file=sys.stderr)


def _print_warnings(store) -> None:
    for w in store.warnings:
        print(f"telfilter: warning: {w}", file=sys.stderr)


def cmd_config(args) -> int:
    from .configcheck import load_config
    given = getattr(args, "config", None)
    if args.dir and given and Path(args.dir).resolve() != Path(given).resolve():
        # (the directory named last silently won: a check passed on another directory than --config named)
        print(f"telfilter config check: error: two config directories named, --config {given} and {args.dir}: "
              "name one", file=sys.stderr)
        return 2
    cfg = load_config(args.dir or given)
    for path, summary in cfg.checked:
        print(f"{path}: {summary}")
    for err in cfg.errors:
        print(err, file=sys.stderr)
    warnings = list(cfg.rules.warnings) if cfg.rules is not None else []
    warnings += cfg.smpp.warnings if cfg.smpp is not None else []      # an expired TLS certificate (smpp_proxy/tls.py)
    errors = list(cfg.errors)
    from .credentials import state_url
    args.state = state_url(args, warnings)
    # serve's secrets files and $TELFILTER_ESME_ACCOUNTS, read as serve reads them (a unit's ExecStartPre passed,
    # then serve refused them), and the warnings serve's start gives of the accounts (none at all: every bind refused)
    from types import SimpleNamespace

    from .credentials import NO_ACCOUNTS, esme_accounts, merge_accounts, smsc_password
    secrets = SimpleNamespace(esme_account=[], esme_accounts_file=args.esme_accounts_file, smsc_password=None,
                              smsc_password_file=args.smsc_password_file)
    errs: list = []
    if args.smsc_password_file:
        smsc_password(secrets, errs, warnings)
    mutual = bool(cfg.smpp.tls_listen and cfg.smpp.tls_client_ca) if cfg.smpp is not None else None
    extra = esme_accounts(secrets, errs, warn=False, mutual_tls=mutual, warnings=warnings)
    if args.esme_accounts_file and not errs:
        print(f"{args.esme_accounts_file}: {len(extra)} ESME accounts")
    accounts = None
    if cfg.smpp is not None and not errs:
        accounts = dict(cfg.smpp.accounts)
        merge_accounts(accounts, extra, warnings)
    for e in errs:
        print(e, file=sys.stderr)
    errors += errs
    if getattr(args, "state", None):            # the shared state server, as serve would find it at start
        from .state.redis_check import check_url
        errs, warns, notes = check_url(args.state)
        for e in errs:
            print(e, file=sys.stderr)
        errors += errs
        warnings += warns
        for n in notes:
            print(n)
    if accounts == {} and not errors:             # (as serve: said when nothing else stops the start)
        warnings.append(NO_ACCOUNTS)
    for w in warnings:
        print(w, file=sys.stderr)
    if errors:
        print(f"telfilter config check: {len(errors)} error(s)", file=sys.stderr)
        return 2
    if warnings:
        print(f"telfilter config check: {len(warnings)} warning(s)", file=sys.stderr)
        return 1 if getattr(args, "strict", False) else 0
    return 0


def cmd_rules(args) -> int:
    from .config import load_settings
    from .rules.loader import load_rules
    settings = load_settings(getattr(args, "config", None))
    if args.rcmd == "check":
        from .rules.loader import RuleSetError
        from .servicelog import say_error
        d = Path(args.dir) if args.dir else settings.rules_dir
        try:
            rs = load_rules(d)
        except RuleSetError as e:           # every error, then how many (as `config check` ends)
            for err in e.errors:
                say_error(str(err))
            print(f"telfilter rules check: {len(e.errors)} error(s) in {d}", file=sys.stderr)
            return 2
        for w in rs.warnings:
            print(w, file=sys.stderr)
        for note in rs.notes:           # said, never a warning: --strict does not fail on it
            print(note, file=sys.stderr)
        n = 0
        if not args.no_examples:
            from .ruletools.examples import run_examples
            n, failures = run_examples(rs, settings)
            if failures:
                for f in failures:
                    print(f, file=sys.stderr)
                print(f"telfilter rules check: {len(failures)} example or fixture failure(s) in {d}", file=sys.stderr)
                return 1
        scoring = sum(1 for r in rs.rules if not r.helper)
        ex = "examples not run (--no-examples)" if args.no_examples else f"{n} examples pass"
        warned = f", {len(rs.warnings)} warning(s)" if rs.warnings else ""
        # a disabled rule is checked, then left out: its examples are not run (they were not, without a word)
        off = f", {len(rs.disabled)} disabled ({', '.join(sorted(rs.disabled))}: examples not run)" if rs.disabled else ""
        print(f"{d}: OK: {len(rs.rules)} rules ({scoring} scoring, {len(rs.rules) - scoring} helpers){off}, {ex}{warned}")
        return 1 if rs.warnings and args.strict else 0
    if args.rcmd == "test":
        from .ruletools.whatif import what_if
        return what_if(args, settings)
    return 1
