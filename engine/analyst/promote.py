"""`telfilter ml promote | rollback`: install a model where serve loads it, keep the one before.

Theory of operation. The configured model path P ([ml] model in telfilter.toml) becomes a
symbolic link into a versions directory beside it, `.<name>.versions/`, which holds one copy
per promoted model (`<model_version>-<UTC time>/card.json, weights.npz`) and a link `previous`
to the model P showed before. Promotion validates the model (load_scorer: card, checksum,
self-check), copies it into a fresh version directory (files fsynced, then the directory
renamed into place), and only then swaps P with rename(2) of a new link over the old one:
a serve reloading at any moment reads the old model or the new one, never half of each. A P
that is still a plain directory (a model installed by hand) is first moved into the versions
directory as the previous model (that once, P is missing between two renames; a reload in that
moment is refused by serve, whose old model keeps serving); an empty one, made ready for the first
promote, holds no model and is removed. Rollback swaps P and `previous` the same way (so a second
rollback goes forward again). At most KEEP version directories are kept; the current and the
previous one never go.

After the swap the running serve is told over its control socket (`reload`, as `telfilter ctl
reload`) and asked again (`stats`) which model version it serves; if it refuses the new model
(its build cannot read it), P is put back to the model before and the command fails.
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..durable import fsync_dir

KEEP = 5
FILES = ("card.json", "weights.npz")
SERVES = "serves"       # the running serves' notes (analyst/serves.py), in the versions directory: no version


class PromoteError(Exception):
    pass


def versions_dir(target: Path) -> Path:
    return target.parent / f".{target.name}.versions"


def versions_holding(path: Path) -> Path | None:
    """The versions directory of a promoted model path that `path` (resolved, links followed) lies in: a
    `.<name>.versions` with the link `<name>` beside it, as `install` lays them out; None when it is in none."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return None
    for d in (real, *real.parents):
        n = d.name
        if n.startswith(".") and n.endswith(".versions") and len(n) > len("..versions"):
            if (d.parent / n[1:-len(".versions")]).is_symlink():
                return d
    return None


def _link(path: Path, to: Path) -> None:
    """Point `path` at `to` atomically (relative link: the tree can be moved as a whole)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(to, path.parent), tmp)
    os.replace(tmp, path)


def current(target: Path) -> Path | None:
    if target.is_symlink():
        return (target.parent / os.readlink(target)).resolve()
    return target if target.is_dir() else None


def previous(target: Path) -> Path | None:
    p = versions_dir(target) / "previous"
    return (p.parent / os.readlink(p)).resolve() if p.is_symlink() else None


def _slug(version: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)[:60] or "model"
    return f"{safe}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"


def install(model: Path, target: Path) -> dict:
    """Copy `model` into target's versions directory and point `target` at it."""
    from ..ml.model import ModelError, load_scorer
    try:
        sc = load_scorer(model)
    except ModelError as e:
        raise PromoteError(f"refused, nothing changed: {e}") from None
    vd = versions_dir(target)
    vd.mkdir(parents=True, exist_ok=True)
    before = current(target)
    if target.is_symlink() and before is not None and _same_model(before, model):
        # the model served already (a retry after serve did not answer, a cron job's same candidate): a second
        # copy became `previous`, and rollback swapped two copies of one version, the model before out of reach
        prev = previous(target)
        return {"model": str(target), "installed": str(before), "model_version": sc.version,
                "previous": str(prev) if prev else None, "previous_version": _version_of(prev) if prev else None,
                "already_installed": True}
    moved = emptied = None
    if before is not None and not target.is_symlink() and _empty(before):
        # an empty directory made ready for the first promote holds no model to keep: kept as the first previous
        # version, `ml rollback` then refused to put back "not a model directory" instead of saying there is none
        emptied = before.stat().st_mode & 0o7777
        os.rmdir(target)
        before = None
    if before is not None and not target.is_symlink():
        # a model directory installed by hand: it becomes the first version, kept for rollback
        moved = vd / _slug(_version_of(before) + "-manual")
        os.rename(target, moved)
        before = moved
    slug = _slug(sc.version)
    tmp = vd / f".{slug}.tmp"
    tmp.mkdir()
    try:
        for f in FILES:
            shutil.copyfile(model / f, tmp / f)
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        # the copy is what serve will load: validated again, as `model` may have changed since it was (an
        # `ml train --out` into it writes weights.npz, then card.json) or the copy may have gone wrong
        installed = load_scorer(tmp)
        if installed.version != sc.version:
            raise ModelError(f"{model}: changed while it was being copied ({sc.version} -> {installed.version})")
    except (OSError, ModelError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved is not None:
            # the hand-installed model goes back to P: left in the versions directory, P named nothing, and a
            # serve restarted after this "nothing changed" refused to start
            os.rename(moved, target)
        if emptied is not None:
            os.mkdir(target)
            os.chmod(target, emptied)           # (mkdir's mode goes through the umask: a group's 0770 came back 0750)
        raise PromoteError(f"refused, nothing changed: {e}") from None
    dest = vd / slug
    os.rename(tmp, dest)
    _link(target, dest)
    if before is not None:
        _link(vd / "previous", before)
    fsync_dir(vd)
    fsync_dir(target.parent)
    _prune(vd, keep={dest, before})
    return {"model": str(target), "installed": str(dest), "model_version": sc.version,
            "previous": str(before) if before else None,
            "previous_version": _version_of(before) if before else None}


COVERAGE_SHARE = 0.10      # a candidate with fewer than this share of the served model's examples of a language


def coverage_warnings(model: Path, target: Path) -> list[str]:
    """Languages the model served at `target` was trained on that `model` saw far fewer examples of (per the
    two cards' `languages`): such a model may block that language's ham or miss its spam, which its own
    validation metrics (on its own data) cannot show. A warning, not a refusal: the analyst may mean it."""
    served = current(target)
    if served is None or _empty(served):      # the first promote: serve runs the bundled model until then
        from ..ml.model import default_model_dir
        served = default_model_dir()
    mine, theirs = _languages(model), _languages(served)
    out = []
    for lang, t in sorted(theirs.items()):
        m = mine.get(lang, {})
        n, tn = int(m.get("messages", 0)), int(t.get("messages", 0))
        if tn and n < COVERAGE_SHARE * tn:
            out.append(f"{model} was trained on {n:,} {lang} messages ({int(m.get('spam', 0)):,} spam), the served "
                       f"model {_version_of(served)} on {tn:,} ({int(t.get('spam', 0)):,} spam): it may block {lang} "
                       f"ham or miss {lang} spam; check it on {lang} data first (`telfilter ml compare --model "
                       f"{model} --data FILE`)")
    return out


def _languages(d: Path) -> dict:
    import json
    try:
        langs = json.loads((d / "card.json").read_text(encoding="utf-8")).get("languages")
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): v for k, v in langs.items() if isinstance(v, dict)} if isinstance(langs, dict) else {}


def put_back(target: Path, out: dict, prev_before: Path | None) -> None:
    """Undo the `install` that returned `out`, whose model a running serve refused: the path to the model it still
    serves (unvalidated: the refused one is no better), and `previous` to `prev_before`, what it named before (None:
    nothing), so `rollback` puts back what it did before. (A swap as rollback's made `previous` the refused model,
    which the next rollback installed.)"""
    if not out.get("previous"):
        raise PromoteError(f"{target}: no previous model to put back (nothing was served from this path before)")
    vd = versions_dir(target)
    _link(target, Path(out["previous"]))
    if prev_before is not None:
        _link(vd / "previous", prev_before)
    elif (vd / "previous").is_symlink():
        (vd / "previous").unlink()
    fsync_dir(vd)
    fsync_dir(target.parent)


def rollback(target: Path, check: bool = True) -> dict:
    """Swap the link and `previous`, the model put back validated first (`check=False`: not)."""
    vd = versions_dir(target)
    prev, cur = previous(target), current(target)
    if prev is None or not prev.is_dir():
        from ..ml.model import default_model_dir
        # the first promote replaced the bundled model serve ran: not a version here, but it can be put back
        raise PromoteError(f"{target}: no previous model to roll back to (nothing promoted over one yet); to serve "
                           f"the bundled model again, promote it: `telfilter ml promote {default_model_dir()}`")
    from ..ml.model import ModelError, load_scorer
    try:
        if check:
            # validated as `install` validates a candidate: a version directory damaged since it was served
            # (or a `previous` pointed elsewhere by hand) was linked in with "serve loads it when it starts",
            # exit 0, and serve then refused to start
            load_scorer(prev)
    except ModelError as e:
        raise PromoteError(f"refused, nothing changed: {e}") from None
    _link(target, prev)
    if cur is not None:
        _link(vd / "previous", cur)
    fsync_dir(vd)
    fsync_dir(target.parent)
    return {"model": str(target), "installed": str(prev), "model_version": _version_of(prev),
            "previous": str(cur) if cur else None, "previous_version": _version_of(cur) if cur else None}


def _empty(d: Path) -> bool:
    """A plain directory with nothing in it (made ready for the first promote)."""
    try:
        return d.is_dir() and not d.is_symlink() and next(d.iterdir(), None) is None
    except OSError:
        return False


def _same_model(a: Path, b: Path) -> bool:
    """`a` and `b` hold the same model: the same card, byte for byte (it holds the weights' checksum)."""
    try:
        return (a / "card.json").read_bytes() == (b / "card.json").read_bytes()
    except OSError:
        return False


def _version_of(d: Path) -> str:
    import json
    try:
        return str(json.loads((d / "card.json").read_text(encoding="utf-8")).get("model_version", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unknown"


def _prune(vd: Path, keep: set) -> None:
    keep = {p.resolve() for p in keep if p is not None}
    for left in vd.glob(".*.tmp"):
        # a copy a promote killed mid-way left (one promote at a time holds the lock: none is under way now); it
        # was never removed, a model's size of disk each time
        shutil.rmtree(left, ignore_errors=True)
    # (the serves' notes were taken for the oldest version and removed: a promote with --config alone then said
    # "serve loads it when it starts", exit 0, while the running serve kept its old model)
    dirs = sorted((p for p in vd.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                   and p.name != SERVES), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in dirs[KEEP:]:
        if old.resolve() not in keep:
            shutil.rmtree(old, ignore_errors=True)


def notify(socket_path: Path, timeout: float = 60.0) -> dict:
    """Ask the serve on `socket_path` to reload and say which model version it now serves.

    Returns {"reloaded": bool, "model_version": str|None, "error": str|None, "serve": "running"|"none"}.
    """
    import time
    from ..control_client import ControlUnavailable, request, request_pool
    end = time.monotonic() + timeout
    while True:
        try:
            ans = request_pool(socket_path, {"cmd": "reload", "what": ["model"]}, max(0.1, end - time.monotonic()))
        except ControlUnavailable as e:     # `gone`: nothing listens there (a noted serve killed: its note goes)
            return {"serve": "none", "reloaded": False, "model_version": None, "error": str(e), "gone": e.gone}
        # a serve in its start-up wait (control.py `starting`, up to --drain-timeout + 2 s) answers every command
        # so: asked again, not taken for a refusal of the model (which put the old model back)
        if not ans.get("starting") or time.monotonic() + 0.5 >= end:
            break
        time.sleep(0.5)
    m = ans.get("model") if isinstance(ans.get("model"), dict) else {}
    if not m.get("ok", False):
        return {"serve": "running", "reloaded": False, "model_version": m.get("version"),
                "error": m.get("error") or ans.get("error") or "model reload refused"}
    try:
        st = request(socket_path, {"cmd": "stats"}, timeout)
        version = (st.get("model") or {}).get("version")
    except ControlUnavailable as e:
        return {"serve": "running", "reloaded": True, "model_version": m.get("version"), "error": str(e)}
    out = {"serve": "running", "reloaded": True, "model_version": version, "error": None}
    if ans.get("ok") is False:       # rules or lists refused in the same reload: the model went in
        out["other_reload_errors"] = {k: ans[k] for k in ("rules", "lists") if isinstance(ans.get(k), dict)
                                      and not ans[k].get("ok", True)}
    bad = {w: a.get("error") or a.get("model") for w, a in (ans.get("workers") or {}).items() if a.get("ok") is False}
    if bad:                          # a pool: workers that refused the model keep the old one
        out["workers_refused"] = bad
    return out
