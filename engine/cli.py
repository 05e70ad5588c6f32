"""`telfilter` command line: parses (cli_parser.py), runs the command and turns its errors into exit statuses."""
from __future__ import annotations

import logging
import os
import select
import sys

from .cli_checks import missing_train_extra
from .cli_parser import command_error, parser


def main(argv=None) -> int:
    # serve's reload and log-reopen signals are ignored from the program's first line (the program itself: argv
    # None), until serve's event loop takes them: their default action ends the process, and the parsing and serve's
    # imports before cmd_serve took ~0.45 s (logrotate's `systemctl kill -s USR2` during a restart killed the new
    # serve). Given back as they were to every other command once parsed (_main).
    held = _hold_signals() if argv is None else {}
    try:
        return _main(argv, held)
    except KeyboardInterrupt:       # Ctrl-C: one line, not a traceback (outputs are written whole or not at all)
        from .servicelog import say_error
        say_error("telfilter: interrupted")
        if argv is None:            # the program itself: die of SIGINT, as Python does, so a calling shell loop stops
            import signal
            # Python flushes stdout before its own death by SIGINT (Py_FinalizeEx, then the kill): so do we, or
            # what a command printed to a pipe or file (block-buffered: up to 8 KB) is lost, its last line torn
            for f in (sys.stdout, sys.stderr):
                try:
                    f.flush()
                except (OSError, ValueError):       # a reader gone (EPIPE) or the stream closed: nothing to keep
                    pass
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return 130


def _hold_signals() -> dict:
    import signal
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)}


def _main(argv=None, held=None) -> int:
    from .cli_checks import arguments_error, parse_command_line
    args = parse_command_line(parser(), argv)
    if held and getattr(args, "cmd", None) != "serve":
        import signal
        for sig, was in held.items():
            if was is not None:         # (None: a handler not set from Python, left as it is)
                signal.signal(sig, was)
    if args is None:                # argparse's usage error, said as a JSON line (serve --log-format json)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="telfilter: %(levelname)s: %(message)s")
    need = missing_train_extra(args) or arguments_error(args)
    if need:
        from .servicelog import say_error, setup_service_logging
        if getattr(args, "log_format", None) == "json":     # serve's: its start-up errors are JSON lines
            setup_service_logging(False, "json")
        say_error(command_error(args, need))
        return 2
    from .config import ConfigError
    from .lists import CsvError, SnapshotError
    from .ml.model import ModelError
    from .rules.loader import RuleSetError
    from .commands import cmd_check, cmd_config, cmd_lists, cmd_rules
    from .servicelog import say_error
    try:
        if args.cmd == "check":
            return cmd_check(args)
        if args.cmd == "lists":
            return cmd_lists(args)
        if args.cmd == "rules":
            return cmd_rules(args)
        if args.cmd == "config":
            return cmd_config(args)
        if args.cmd == "ml":
            from .ml.cli import cmd_ml
            return cmd_ml(args)
        if args.cmd == "reports":
            from .analyst.cli import cmd_reports
            return cmd_reports(args)
        if args.cmd == "serve":
            from .serve import cmd_serve
            return cmd_serve(args)
        if args.cmd == "ctl":
            from .control_client import cmd_ctl
            return cmd_ctl(args)
        if args.cmd == "report":
            from .report import cmd_report
            return cmd_report(args)
        if args.cmd == "verdicts":
            from .report.find import cmd_verdicts
            return cmd_verdicts(args)
        if args.cmd == "demo":
            from .demo import cmd_demo
            return cmd_demo(args)
        if args.cmd == "bench":
            from benchmarks.__main__ import main as bench_main
            return bench_main((["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
                              + [x for step in args.skip for x in ("--skip", step)])
    # (say_error: a plain line, or a JSON object once serve set up --log-format json)
    except RuleSetError as e:
        for err in e.errors:
            say_error(str(err))
        return 2
    except ConfigError as e:
        for err in e.errors:
            say_error(command_error(args, err))
        return 2
    except (CsvError, SnapshotError, ModelError) as e:
        say_error(command_error(args, e))
        return 2
    except BrokenPipeError as e:    # `telfilter ... | head`: the reader has what it wanted (an OSError: before it)
        if _stdout_broken():
            _quiet_stdout()
            return 0
        say_error(command_error(args, e.strerror or e))     # another pipe or socket broke
        return 2
    except OSError as e:             # a missing or unreadable input file, a port in use, ...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        say_error(command_error(args, f"{where}{e.strerror or e}"))
        return 2
    except Exception as e:
        from .servicelog import json_service_log
        if not json_service_log():
            raise
        # a bug under serve --log-format json: its traceback in the line's "exc", status 1 as Python's own exit
        say_error(f"telfilter {args.cmd}: stopped by an unexpected error: {type(e).__name__}: {e}", exc_info=e)
        return 1
    return 1


def _stdout_broken() -> bool:
    """Whether stdout is the stream whose reader went away."""
    try:
        sys.stdout.flush()
        return bool(select.select([], [sys.stdout.fileno()], [], 0)[1]) and _peer_gone(sys.stdout.fileno())
    except BrokenPipeError:
        return True
    except (OSError, ValueError, AttributeError):
        return False


def _peer_gone(fd: int) -> bool:
    """A pipe whose reader has closed: a zero-byte write says nothing, so ask the descriptor with poll."""
    p = select.poll()
    p.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in p.poll(0))


def _quiet_stdout() -> None:
    """After a broken pipe the interpreter's last flush of stdout would fail again ("Exception ignored ...
    BrokenPipeError"): point the descriptor at /dev/null so that flush goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
