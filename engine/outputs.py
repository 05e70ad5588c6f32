"""Output paths of `telfilter` commands checked before the work starts: a training, a cross-validation or a
comparison used to run for minutes and then stop on 'File exists' (a file where its output directory goes) or
'Is a directory' (naming its temporary file)."""
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
