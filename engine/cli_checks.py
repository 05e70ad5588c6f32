"""Arguments of `telfilter` commands checked before the work starts.

Output paths of the wrong kind: a training, a cross-validation or a comparison used to run for minutes and then stop
on 'File exists' (a file where its output directory goes) or 'Is a directory' (naming its temporary file).

Text values that are not UTF-8: the shell passes argv as bytes, which Python decodes with surrogateescape, so a
Latin-1 byte typed in a non-UTF-8 terminal (`--text 'café'`) became a lone surrogate that a strict UTF-8 stdout (the
en_US.UTF-8 locale) could not print: a UnicodeEncodeError traceback after the verdict was made, or a message blaming
"characters outside Latin-1". File names are not checked: on Linux a name is bytes and any may be valid.

A command that needs the [train] extra (scikit-learn, scipy, matplotlib) and runs where it is not installed: said
before the command starts, naming the extra, not after a long evaluation.
"""
from __future__ import annotations

import os


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
    return dirs, files


def _texts(args) -> list:
    """(option, value) of the command's text arguments (messages, senders, owners: never file names)."""
    names = []
    if args.cmd == "check":
        names = ["sender", "recipient", "text", "account"]
    elif (args.cmd == "lists" and args.lcmd in ("add", "remove")) or (args.cmd == "ctl" and args.ctlcmd == "lists"):
        names = ["value", "owner", "category", "valid_from", "valid_to", "accounts", "channel"]
    elif args.cmd == "ml" and args.mcmd == "predict":
        names = ["text"]
    return [(f"--{n.replace('_', '-')}" if n != "value" else "value", getattr(args, n, None)) for n in names]


def arguments_error(args) -> str | None:
    """The first argument that cannot work, said in one line, or None."""
    for opt, v in _texts(args):
        if isinstance(v, str):
            for i, ch in enumerate(v):
                if "\udc80" <= ch <= "\udcff":
                    return (f"{opt} is not valid UTF-8: byte 0x{ord(ch) - 0xDC00:02x} at character {i + 1} (set the "
                            "terminal or the script to UTF-8)")
    return output_error(args)


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
