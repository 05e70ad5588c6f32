"""Arguments of `telfilter` commands checked before the work starts.

Output paths of the wrong kind: a training, a cross-validation or a comparison used to run for minutes and then stop
on 'File exists' (a file where its output directory goes) or 'Is a directory' (naming its temporary file).

Text values that are not UTF-8: the shell passes argv as bytes, which Python decodes with surrogateescape, so a
Latin-1 byte typed in a non-UTF-8 terminal (`--text 'café'`) became a lone surrogate that a strict UTF-8 stdout (the
en_US.UTF-8 locale) could not print: a UnicodeEncodeError traceback after the verdict was made, or a message blaming
"characters outside Latin-1". File names are not checked: on Linux a name is bytes and any may be valid.

A command that needs the [train] extra (scikit-learn, scipy, matplotlib) and runs where it is not installed: said
before the command starts, naming the extra, not after a long evaluation.

A command line argparse cannot read, under `serve --log-format json`: argparse answers before the format is known,
with its plain usage text, which broke the collector parsing serve's JSON lines; the format is read from the words
themselves so that the error is one JSON line like serve's other start-up errors.
"""
from __future__ import annotations

import os
import sys


def _outputs(args) -> tuple[list, list]:
    """(option, path) of the command's output directories and of its output files written whole at the end."""
    dirs, files = [], []
    if args.cmd == "report":
        dirs.append(("--out", args.out))
    elif args.cmd == "ml":
        if args.mcmd == "train" and args.out:
            dirs.append(("--out", args.out))
        if args.mcmd in ("eval", "cv", "compare") and args.report:
            dirs.append(("--report", args.report))
        if args.mcmd == "cv" and args.json:
            files.append(("--json", args.json))
        if args.mcmd == "compare" and args.changes:
            files.append(("--changes", args.changes))
    elif args.cmd == "reports" and args.rcmd == "export" and args.out != "-":
        files.append(("--out", args.out))
    elif (args.cmd == "check" or (args.cmd == "lists" and args.lcmd == "export")) and args.out not in (None, "-"):
        files.append(("--out", args.out))
    return dirs, files


def _texts(args) -> list:
    """(option, value) of the command's text arguments (messages, senders, owners: never file names)."""
    names = []
    if args.cmd == "check":
        names = ["sender", "recipient", "text", "account"]
    elif (args.cmd == "lists" and args.lcmd in ("add", "remove")) or (args.cmd == "ctl" and args.ctlcmd == "lists"):
        names = ["value", "owner", "category", "valid_from", "valid_to", "accounts", "channel"]
    elif args.cmd == "ml" and args.mcmd == "predict":
        names = ["text", "sender"]
    return [(f"--{n.replace('_', '-')}" if n != "value" else "value", getattr(args, n, None)) for n in names]


def arguments_error(args) -> str | None:
    """The first argument that cannot work, said in one line, or None."""
    for opt, v in _texts(args):
        if isinstance(v, str):
            for i, ch in enumerate(v):
                if "\udc80" <= ch <= "\udcff":
                    return (f"{opt} is not valid UTF-8: byte 0x{ord(ch) - 0xDC00:02x} at character {i + 1} (set the "
                            "terminal or the script to UTF-8)")
    if args.cmd == "ml" and args.mcmd == "predict" and args.text is not None and not args.text.strip():
        # (its probability was the model's bias alone, "allow"; ml train and eval take such a line for a bad one)
        return "--text is empty: there is nothing to score (a text of blanks only is no message)"
    if args.cmd == "ml" and args.mcmd == "predict" and args.sender is not None and args.jsonl is not None:
        return "--sender is for --text: with --jsonl each line gives its own \"sender\""
    if args.cmd == "ml" and args.mcmd == "predict" and args.explain is not None and args.explain < 1:
        return f"--explain {args.explain}: give how many words to show, from 1 (default 5)"
    if args.cmd == "bench":
        # the suite runs the shipped config/ on data it makes for each run: taken and not used, a --config looked
        # measured
        for opt, attr in (("--config", "config"), ("--data-dir", "data_dir")):
            if getattr(args, attr, None):
                return f"{opt} is not used: bench measures the shipped config/ on data it makes for each run"
    return config_dir_error(args) or output_error(args)


def config_dir_error(args) -> str | None:
    """--config naming no directory, said naming the flag (`telfilter serve: error: /x: is a file: …` named the path
    alone). `config check DIR` is said by the loader, naming DIR."""
    from .config import config_dir_problem
    d = getattr(args, "config", None)
    why = config_dir_problem(d) if d else None
    return f"--config {d}: {why}" if why else None


def output_error(args) -> str | None:
    """An output path of the wrong kind, refused before the work: a training, a cross-validation or a
    comparison ran for minutes and then stopped on 'File exists' or 'Is a directory' (naming a temporary file)."""
    dirs, files = _outputs(args)
    for opt, p in dirs:
        if os.path.exists(p) and not os.path.isdir(p):
            return f"{opt} {p}: not a directory (it names the directory the command writes its files into)"
    for opt, p in files:
        if os.path.isdir(p):
            return f"{opt} {p}: is a directory (name the file to write)"
    if args.cmd == "check" and args.jsonl not in (None, "-") and args.out not in (None, "-") and \
            os.path.isfile(args.out):       # (a terminal, FIFO or device is written to, never replaced)
        # `check --jsonl IN --out IN` replaced the corpus with its verdicts, exit 0
        from .analyst.export import refuse_overwrite
        from .analyst.store import StoreError
        try:
            refuse_overwrite(args.out, [args.jsonl])
        except StoreError as e:
            return f"--out {e}"
    return None


# Training, evaluation and plots need scikit-learn, scipy and matplotlib (~230 MB); a serve node
# does not, so they are the [train] extra. module -> the name pip knows it by.
TRAIN_EXTRA = {"sklearn": "scikit-learn", "scipy": "scipy", "matplotlib": "matplotlib"}


def _train_modules(args) -> tuple[str, list[str]]:
    """(what the command is called, the [train] modules it needs)."""
    if args.cmd == "ml" and args.mcmd == "train":
        return "ml train", ["sklearn", "scipy"]
    if args.cmd == "ml" and args.mcmd == "cv":
        return "ml cv", ["sklearn", "scipy"] + (["matplotlib"] if args.report else [])
    if args.cmd == "ml" and args.mcmd == "eval":
        return ("ml eval --report", ["sklearn", "matplotlib"]) if args.report else ("ml eval", ["sklearn"])
    if args.cmd == "bench":
        return "bench", ["sklearn", "matplotlib"]
    return "", []


def missing_train_extra(args) -> str | None:
    """The error to print when a command needs the [train] extra and it is not installed;
    checked before the command starts, not after a long evaluation."""
    import importlib
    what, mods = _train_modules(args)
    missing = []
    for m in mods:
        try:
            importlib.import_module(m)
        except ImportError:
            missing.append(TRAIN_EXTRA[m])
    if not missing:
        return None
    return (f"`telfilter {what}` needs {', '.join(missing)}, in the [train] extra: "
            "pip install 'telfilter[train]'")


def parse_command_line(parser, argv):
    """The parsed command line, else None after argparse's usage error, said as argparse does (exit 2 to follow) or,
    when the words ask for `serve --log-format json`, as one JSON line at ERROR (msg: argparse's error line)."""
    words = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not asks_json_log(words):
        return _parse(parser, argv)
    import contextlib
    import io
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return _parse(parser, argv)
    except SystemExit as e:
        if not e.code:          # --help: on stdout, done
            raise
    import logging
    from .servicelog import say_error, setup_service_logging
    logging.basicConfig(stream=sys.stderr)
    setup_service_logging(False, "json")
    lines = said.getvalue().strip().splitlines()
    say_error(lines[-1] if lines else "telfilter serve: error: the command line could not be read")
    return None


def _parse(parser, argv):
    """parser.parse_args(argv), but words no parser takes are said by the command's own parser, as its other usage
    errors are (`telfilter rules check: error: unrecognized arguments: x`, its usage): the top parser said them
    (`telfilter: error: …`, with telfilter's usage)."""
    import argparse
    args, extra = parser.parse_known_args(argv)
    if extra:
        p = parser
        while True:         # down the sub-commands the words named (`rules`, then `check`)
            subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
            name = getattr(args, subs[0].dest, None) if subs and subs[0].dest != argparse.SUPPRESS else None
            if name not in (subs[0].choices if subs else {}):
                break
            p = subs[0].choices[name]
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


_TOP_VALUED = ("--config", "--data-dir")      # telfilter's own options that take a value (before the command)


def asks_json_log(words: list[str]) -> bool:
    """Whether a command line is `serve ... --log-format json`, read without argparse (whose error is to be said):
    the command is the first word that is neither an option nor the value of one of telfilter's own; the last
    --log-format wins, spelt as argparse takes it (`--log-format=json`, `--log-f json`; `--log` is the verdict log)."""
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "--":
        w = words[i]
        i += 2 if "=" not in w and len(w) >= 3 and any(o.startswith(w) for o in _TOP_VALUED) else 1
    if i >= len(words) or words[i] != "serve":
        return False
    rest, fmt = words[i + 1:], None
    for j, w in enumerate(rest):
        if w == "--":
            break
        name, eq, value = w.partition("=")
        if len(name) > len("--log-") and "--log-format".startswith(name):
            fmt = value if eq else (rest[j + 1] if j + 1 < len(rest) else None)
    return fmt == "json"


def absent_data_dir_note(args):
    """For a command that only reads the lists (`check`, `lists stats`, `lists export`) given a --data-dir that does
    not exist: a function that says so (called once the config has loaded), else a no-op. It judged or showed empty
    lists, a mistyped path taken for an empty data dir without a word (first-use review). Commands that write (an
    import, serve) make it as before."""
    d = getattr(args, "data_dir", None)
    reads = args.cmd == "check" or (args.cmd == "lists" and getattr(args, "lcmd", None) in ("stats", "export"))
    if d and reads and not os.path.exists(d):
        return lambda: print(f"telfilter: note: --data-dir {d} does not exist: its lists are empty (a path "
                             "mistyped?)", file=sys.stderr)
    return lambda: None
