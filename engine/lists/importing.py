"""`ListStore.import_csv`: a CSV file's good rows into a list, and the rules every import follows (a `--replace`
with bad rows or none is refused, a sender never gets two owners on the same dates). The DNC list, which may hold
tens of millions of numbers, goes into its bitmaps in bulk."""
from __future__ import annotations

import hashlib
from array import array

from pyroaring import BitMap64

from . import changes, edits
from .csvio import CsvError, RowError, bad_rows, iter_csv
from .mlexempt import expired_left


class ImportRefused(CsvError):
    """A `--replace` import with bad rows or no rows at all, or any import of sender rows that would give a sender
    two owners on the same dates: nothing was changed."""

    def __init__(self, message, errors):
        super().__init__(message)
        self.errors = errors


def import_csv(store, kind: str, data: bytes, name: str = "<csv>", replace: bool = False,
               allow_partial: bool = False):
    """Import good rows; returns (count, errors). Raises CsvError on a fatal file error and
    ImportRefused when `replace` would install a list with errors or no rows (unless
    `allow_partial`)."""
    if kind == "dnc":
        return _import_dnc(store, data, name, replace, allow_partial)
    records, errors = [], []
    bar, progress = _reading(data, name)
    now = store.today()
    for item in iter_csv(kind, data, name, on_progress=progress, lines=True, now=now):
        (errors if isinstance(item, RowError) else records).append(item)
    bar.close()
    # a sender registered to two owners on some date: whichever row came first would be its owner (caps,
    # consent, ad rules), so no row of the file goes in (--allow-partial neither: it would pick one)
    _refuse_owner_clashes(kind, name, errors, sum(e.owner_clashes for e in errors), "rows of this file")

    def add_all(L):
        left = store.drop_expired(L, kind, now)
        clashes = []
        for line, r in records:
            if r is None:               # a row repeating an earlier one of the file (csvio.iter_csv)
                continue
            try:
                edits.add(L, kind, r)
            except edits.OwnerClash as e:
                clashes.append(RowError(line, str(e), owner_clashes=1))
            except edits.ListFull as e:         # (the list's stated bound: nothing of the file goes in)
                raise ImportRefused(f"{name}:{line}: refused, {kind} list unchanged: {e}", errors) from None
        _refuse_owner_clashes(kind, name, errors + clashes, len(clashes), "this file and the registry as stored")
        return left
    return _install_import(store, kind, name, len(records), errors, replace, allow_partial, add_all, data)

def _install_import(store, kind, name, n, errors, replace, allow_partial, add_all, data: bytes = b""):
    """The rule every import follows: --replace is refused when the file had bad rows or none (unless
    allow_partial); otherwise the good rows go in (replacing the list with --replace)."""
    if replace and not allow_partial and (errors or not n):
        why = f"{bad_rows(errors)} bad row(s)" if errors else "no rows"
        raise ImportRefused(f"{name}: --replace refused, {kind} list unchanged: {why} "
                            f"(fix the file, or pass --allow-partial to replace with the good rows only)", errors)
    if not n and not replace:
        return 0, errors            # (nothing saved: no audit line)
    left = 0

    def change(L):
        nonlocal left
        if replace:
            edits.clear(L, kind)
        left = add_all(L)
    # ONE audit line for the file whatever its rows (lists/changes.py), under the lock once it is saved
    store.modify(kind, change, replace=replace, audit=lambda _: (
        "replace" if replace else "import", name, changes.import_detail(
            kind, n, bad_rows(errors), left, hashlib.sha256(data).hexdigest() if store.audit_by else "")))
    if (note := expired_left(left)) is not None:       # (said once saved: a refused import changed nothing)
        store.warnings.append(note)
    return n, errors

def _import_dnc(store, data: bytes, name: str, replace: bool, allow_partial: bool):
    """import_csv for the DNC list, which may hold tens of millions of numbers: the rows go straight
    into two uint64 arrays (8 bytes a number, not a Python tuple each) and into the bitmaps in bulk."""
    by_ch = {"S": array("Q"), "V": array("Q")}
    errors, n = [], 0
    bar, progress = _reading(data, name)
    for item in iter_csv("dnc", data, name, on_progress=progress):
        if isinstance(item, RowError):
            errors.append(item)
            continue
        number, ch = item
        n += 1
        if "S" in ch:
            by_ch["S"].append(number)
        if "V" in ch:
            by_ch["V"].append(number)
    bar.close()

    def add_all(L):
        L.dnc_s |= BitMap64(by_ch["S"])
        L.dnc_v |= BitMap64(by_ch["V"])
        L.ads_may_be_barred()      # (in bulk: not one by one)
        return 0                    # (no DNC row expires)
    return _install_import(store, "dnc", name, n, errors, replace, allow_partial, add_all, data)


def _refuse_owner_clashes(kind, name, errors, n, where):
    if n:
        raise ImportRefused(f"{name}: refused, {kind} list unchanged: {n} row(s) would give a sender two owners on "
                            f"the same dates ({where}; a sender has one owner at a time; --allow-partial does not "
                            "apply: it would keep whichever came first)", errors)


def _reading(data: bytes, name: str):
    """A progress bar for reading `data` (a no-op but for a big file on a terminal) and the iter_csv callback that
    moves it, given the bytes read so far."""
    bar, done = _bar(len(data), f"reading {name}"), 0

    def progress(pos):
        nonlocal done
        bar.update(pos - done)
        done = pos
    return bar, progress


def _bar(total: int, desc: str):
    """A progress bar on stderr for a big file (over 8 MB) when stderr is a terminal; else a no-op."""
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False,
                    disable=None if total > 8 << 20 else True)
    except ImportError:
        class _Off:
            def update(self, n): ...
            def close(self): ...
        return _Off()
