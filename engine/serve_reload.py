"""Reloads of a running serve: rules (read off the loop, one read at a time), lists (loaded off the loop and swapped
in by reference, then caught up with the DNC journal: serve_journal.py), the model.

Called by serve's signal handlers (SIGHUP, SIGUSR1) and file watcher (engine/serve.py), by `telfilter ctl reload`
(engine/control_reload.py) and `ml promote`. Moved here from engine/serve.py unchanged (its role: reloading, not
running the process).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from pathlib import Path

from .reload_counts import count_reload
from .servicelog import life

log = logging.getLogger("telfilter")


async def reload_lists(pipe, warnings: list | None = None, full: bool = False) -> str | None:
    """Load the lists whose files changed since the set in force was read (every list: `full`) in a worker thread,
    then swap the new set in on the loop, the unchanged lists' objects kept in it (engine/lists/reuse.py). Returns
    None, or why the reload was refused (the old lists stay in force). What the load warned about (a snapshot
    refused and its previous generation used, unreadable journal lines) is logged and added to
    `warnings`. One at a time: a SIGHUP, a `ctl reload lists` and a CLI change picked up together
    loaded side by side (each set in memory at once beside the one in force, each holding the GIL
    in turns), and the one that finished last was swapped in even when it had read the older files."""
    return await under_way(pipe, _one_lists_reload(pipe, warnings, full))


async def _one_lists_reload(pipe, warnings, full):
    lock = getattr(pipe, "lists_reload_lock", None)
    if lock is None:
        lock = pipe.lists_reload_lock = asyncio.Lock()
    async with lock:
        return await _reload_lists(pipe, warnings, full)


STOPPING = "serve is stopping: no reload begins (the files are read at the next start)"


async def under_way(pipe, coro):
    """A lists or model reload, `coro`, as a task serve's stop waits for within its budget, then cancels, before it
    closes DNC replication, the state and the verdict log (serve_stop.settle_reloads); none begins after (STOPPING).
    One under way at a SIGTERM ran on beside the stop: the exit waited for its read in the loop's executor (a 1 s
    --drain-timeout took 3 s with 600k registry rows) and threw its result away, a CLI DNC change it had read never
    published to the other nodes. Shielded: its caller cancelled (the watcher at the stop, a ctl client gone), it
    goes on for the stop to wait for, as a rules read does (reload_rules)."""
    if getattr(pipe, "reloads_stopped", False):
        coro.close()
        return STOPPING
    run = getattr(pipe, "reloads_under_way", None)
    if run is None:
        run = pipe.reloads_under_way = set()
    t = asyncio.ensure_future(coro)
    run.add(t)
    t.add_done_callback(run.discard)
    t.add_done_callback(_retrieved)
    return await asyncio.shield(t)


async def _reload_lists(pipe, warnings: list | None, full: bool) -> str | None:
    from .lists import KINDS, ListStore
    from .lists.reuse import changed_kinds, dnc_not_whole
    fresh = ListStore(pipe.store.dir, pipe.store.tz)
    t0 = time.monotonic()
    # the snapshots this read begins from, for the watcher (serve_watch._look): taken before, so one installed
    # during the read is still picked up
    read_from = fresh.snapshot_signature()
    try:
        # a `lists add blacklist` re-read a 200k-row registry and 1M blacklist entries beside a 10M DNC: 1.2-2.7 s
        # of a worker thread holding the GIL in turns, answers up to ~300 ms late, many times a day
        # (in threads the exit does not wait for: a stop abandons a read it could not wait for, as a rules read)
        read = list(KINDS) if full else await _in_daemon_thread(changed_kinds, fresh, pipe.lists, name="lists-reload")
        new = await _in_daemon_thread(_load_frozen, fresh, read, name="lists-reload")
    except Exception as e:          # SnapshotError, OSError and friends: keep the old lists
        log.error("lists reload refused, old lists stay in force: %s", e)
        _count_reload(pipe, "refused", t0)
        return str(e)
    said = list(fresh.warnings)
    why = dnc_not_whole(fresh, new, pipe.lists) if "dnc" in read else None
    if why:     # (kept as in force, caught up below with the journal from its own mark)
        read = [k for k in read if k != "dnc"]
        said = [w for w in said if not w.startswith(str(fresh.path("dnc")))]
        msg = (f"lists reload: the DNC list was not read whole ({why}): the DNC list in force stays, here and on the "
               "other nodes (no difference published); restore the dnc snapshot or import the DNC file again")
        log.error("%s", msg)
        if warnings is not None:
            warnings.append(msg)
    newer = _newer_in_force(pipe.lists, new, read)
    if newer:
        read = [k for k in read if k not in newer]
        said = [_keeping(w, fresh, newer) for w in said]
    kept = [k for k in KINDS if k not in read]
    new.keep_from(pipe.lists, kept)     # on the loop: the DNC bitmaps with every change made to them until now
    try:
        pipe.store.catch_up(new)    # on the loop: no journal append can interleave
    except OSError as e:
        log.error("lists reload refused, old lists stay in force: %s", e)
        _count_reload(pipe, "refused", t0)
        return str(e)
    said += pipe.store.warnings
    for w in said:
        log.warning("%s", w)
    if warnings is not None:
        warnings += said
    rep = getattr(pipe, "replicator", None)
    if rep is not None and "dnc" in read:   # a CLI import/edit: the other nodes get the difference
        n = rep.publish_diff(pipe.lists, new)
        if n:
            log.info("DNC replication: %d changes from a CLI snapshot published", n)
    old, pipe.lists = [pipe.lists], new
    pipe.lists_read = read_from
    # (sizes read in O(1) each: Lists.stats() walks 10M DNC numbers, ~30 ms, not on the loop for a log line)
    life.info("lists reloaded in %.2f s: %s; read again: %s; kept: %s", _count_reload(pipe, "ok", t0, read, kept),
              lists_sizes(new), ", ".join(read) or "none", ", ".join(kept) or "none")
    await asyncio.to_thread(_release, old)
    return None


def _newer_in_force(in_force, new, read) -> list:
    """The kinds (DNC aside) `new` read from their previous generation, their snapshot refused, while the list in
    force was read from a later one: falling back there put a generation the running serve had left behind back in
    force (a brand registered or a domain listed in the damaged generation gone from verdicts, with a warning only).
    The list in force is kept instead. The DNC has its own test (lists.reuse.dnc_not_whole): kept whenever it is not
    read whole."""
    return [k for k in read if k != "dnc" and k not in new.sources and in_force.sources.get(k) is not None
            and (in_force.created.get(k) or 0) > (new.created.get(k) or 0)]


def _keeping(warning: str, store, kinds) -> str:
    """A load's warning about a refused snapshot of one of `kinds`, saying what a reload does with it instead."""
    for k in kinds:
        head = f"{store.path(k)}: refusing snapshot: "
        if warning.startswith(head) and "; using previous good snapshot " in warning:
            return (warning.split("; using previous good snapshot ")[0] + "; the list in force, of a later generation "
                    "than the previous one there, is kept (import the list again to write a good snapshot)")
    return warning


def lists_sizes(lists) -> str:
    """The lists' sizes as the service log says them (at the start and at each reload), each read in O(1):
    Lists.stats() walks 10M DNC numbers, ~30 ms, not on the loop for a log line."""
    return (f"DNC S {len(lists.dnc_s)} V {len(lists.dnc_v)}, senders {len(lists.senders)}, blacklist "
            f"{len(lists.bl_numbers)} numbers {len(lists.bl_domains)} domains {len(lists.bl_ips)} IP ranges, "
            f"consent {len(lists.consent)} owners, ML exemptions {len(lists.ml_exempt)} numbers")


def say_lists_at_start(pipe) -> None:
    """The lists serve starts with, and a warning when the sender registry is empty (a new or mistyped data dir:
    every SMS from a brandname would be judged unregistered, and nothing said why until a reload)."""
    life.info("lists in %s: %s", pipe.store.dir, lists_sizes(pipe.lists))
    if not len(pipe.lists.senders):
        log.warning("the sender registry in %s is empty: every SMS from an alphanumeric sender ID is unregistered to "
                    "the rules (the shipped pack drops it, SENDER_ID_UNREGISTERED); import it with `telfilter "
                    "--data-dir %s lists import senders FILE`", pipe.store.dir, pipe.store.dir)


def _release(box: list) -> None:
    """Free the lists a reload replaced, in a worker thread and in slices: dropped on the loop, the last reference to
    a 200k-row registry and 1M blacklist entries freed them in one go, 57-100 ms of the loop (one C call holding the
    GIL). Left whole when anything else still holds them (freed by reference counts when that lets go): the set,
    or one of its lists, which a later set kept (and which an older set someone holds may share)."""
    import sys
    L = box.pop()
    if sys.getrefcount(L) > 2:      # (L and getrefcount's argument: nothing else can reach them)
        return
    for name in ("senders", "consent", "owner_names", "bl_domains", "ml_exempt"):
        big = getattr(L, name)
        if sys.getrefcount(big) > 3:    # (L's field, big and the argument)
            continue
        pop = big.popitem if isinstance(big, dict) else big.pop
        while big:
            for _ in range(min(len(big), 5000)):
                pop()


def _count_reload(pipe, result: str, t0: float, read=(), kept=()) -> float:
    """What /metrics and `ctl stats` show of lists reloads (`pipe.lists_reloads`: by result, the last one's
    seconds, the lists it read again and those it kept, and how often each list was read again or kept): a reload
    of big lists takes seconds of a worker thread and slows the loop meanwhile, and the NOC saw nothing of it but a
    log line without a time."""
    took = time.monotonic() - t0
    count_reload(pipe, "lists", result == "ok")
    r = getattr(pipe, "lists_reloads", None)
    if r is None:
        r = pipe.lists_reloads = {"ok": 0, "refused": 0, "last_seconds": None, "last_result": None,
                                  "last_read": None, "last_kept": None, "read": {}, "kept": {}}
    r[result] += 1
    r["last_seconds"], r["last_result"] = round(took, 3), result
    if result == "ok":
        r["last_read"], r["last_kept"] = list(read), list(kept)
        for how, kinds in (("read", read), ("kept", kept)):
            for k in kinds:
                r[how][k] = r[how].get(k, 0) + 1
    return took


def _load_frozen(fresh, kinds):
    """fresh.load(kinds=kinds) with no full collection during it, its objects then frozen as serve's start freezes what it
    loaded (engine/serve.py, GC_THRESHOLDS). Measured with 200k registry rows and 1M blacklist entries: a full
    collection during the load held the GIL 170-310 ms (the loop's worst stall of the reload), and the lists a reload
    left in the generations made every full collection from then on walk them, ~125 ms each on the loop, for the rest
    of the process's life. gc.freeze() freezes every object the generations hold, garbage too: the cycles the loop
    let go (a closed session's, a task's) before and during the load were frozen with the lists and never freed, at
    every reload. So the garbage is collected first (one full collection: the heap made since the last freeze, the
    lists in force being frozen), the load runs with young collections only (each walks a few thousand objects; the
    collector's settings are process-wide), and what they leave is collected before the freeze. (With no list
    to read, the same: the lists kept are then frozen if they were not yet.)"""
    th = gc.get_threshold()
    gc.collect()
    gc.set_threshold(th[0], th[1], 1 << 30)         # no full collection while the load runs
    try:
        new = fresh.load(kinds=kinds)
    finally:
        gc.set_threshold(*th)
    gc.collect(1)
    gc.freeze()
    return new


async def reload_rules(pipe) -> list:
    """SIGHUP, `ctl reload rules` and the file watcher: the new set is read and checked in a worker thread and
    swapped in on the loop; reloads run one at a time. On the loop, reading 5,040 rules stalled every SMPP and
    SIP message 4.5-7 s (16.6 s before the rules' load got faster; 1,040 rules 0.85 s): measured with a live
    proxy, an ESME's submit_sm round trips and a 1 ms ticker on the loop. The loader holds the GIL in turns, so
    the loop runs slower meanwhile, not never. A request that comes before the next read has begun (while one
    waits for the one under way) joins it (it reads the files after both came): SIGHUP, the watcher and `ctl
    reload` for one edit cost one read more at most, not one each (seconds of CPU each for thousands of rules)."""
    queued = pipe.rules_reload_queued
    if queued is None:
        queued = pipe.rules_reload_queued = asyncio.ensure_future(_queued_reload(pipe))
        queued.add_done_callback(_retrieved)
    # (shielded: a request cancelled, its ctl client gone or its task stopped, does not take the read the others
    # joined along; they get its result or its error, never a cancellation that was not theirs: review42)
    return await asyncio.shield(queued)


def silent_symbols_vet(config_dir, proxy):
    """A new rule set's check against smpp.toml `[drop] silent_symbols`, as serve's start checks the first (configcheck):
    a reload that renamed or took out a rule named there was put in force, and its drops were answered with their
    error status from then on, the silence lost without a word. Now such a set is refused like a rule file error."""
    from .config import shipped_config_dir
    from .configcheck import _silent_symbol_errors
    p = Path(config_dir or shipped_config_dir()) / "smpp.toml"
    return lambda rules: _silent_symbol_errors(p, proxy.settings.silent_symbols, rules)


def _retrieved(t: asyncio.Task) -> None:
    if not t.cancelled():
        t.exception()        # (its error went to the requests that waited; with none left, no "never retrieved")


async def _queued_reload(pipe) -> list:
    """The read of reload_rules' requests that came before it began: under the lock, after the one under way."""
    from .pipeline import read_rules, rules_stamp
    from .rules.loader import RuleSetError
    lock = pipe.rules_reload_lock
    if lock is None:
        lock = pipe.rules_reload_lock = asyncio.Lock()
    me = asyncio.current_task()
    try:
        async with lock:
            if pipe.rules_reload_queued is me:
                pipe.rules_reload_queued = None      # reading from now on: a request after this needs another read
            d = pipe.rules_dir()
            stamp = pipe.rules_stamp = rules_stamp(d)    # the files this read sees: the watcher's next look
            new = await _in_daemon_thread(read_rules, d)
            vet = getattr(pipe, "rules_vet", None)
            if vet is not None and not isinstance(new, RuleSetError):
                errors = vet(new)
                if errors:
                    new = RuleSetError(errors)
            return pipe.install_rules(d, new, stamp)
    finally:
        if pipe.rules_reload_queued is me:
            pipe.rules_reload_queued = None


def _in_daemon_thread(fn, *args, name="rules-reload") -> asyncio.Future:
    """fn(*args) in a thread of its own that the process does not wait for at its exit: a stop while a rule
    set, the lists or a model is being read (seconds) abandons the read (it touches nothing of the running pipeline).
    In the default executor (asyncio.to_thread), asyncio.run joined it after the stop: --drain-timeout 1 took 5.2 s
    with 5,040 rules (found by review41)."""
    import threading
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def settle(ok, v):
        if not fut.done():
            (fut.set_result if ok else fut.set_exception)(v)

    def run():
        try:
            r, ok = fn(*args), True
        except BaseException as e:          # (the caller's to raise, on its loop)
            r, ok = e, False
        try:
            loop.call_soon_threadsafe(settle, ok, r)
        except RuntimeError:                # the loop closed meanwhile (a stop): nobody is waiting
            pass
    threading.Thread(target=run, name=name, daemon=True).start()
    return fut


async def _reload_all(pipe, with_model=True):
    """SIGHUP's reload: rules, lists, model. A part the stop kept from beginning (its rules read waited behind
    another, and the stop began meanwhile) is said: it was dropped without a word, and the operator who sent the
    SIGHUP took the change for applied."""
    await reload_rules(pipe)
    lists = await reload_lists(pipe)
    model = await _reload_model(pipe) if with_model else None
    left = [what for what, why in (("lists", lists), ("model", model)) if why == STOPPING]
    if left:
        log.warning("SIGHUP: %s not reloaded: %s%s", " and ".join(left), STOPPING,
                    " (a CLI DNC change among them is published to the other nodes by that start)"
                    if "lists" in left and getattr(pipe, "replicator", None) is not None else "")


_ML_SETTINGS = ("ml_enabled", "ml_model", "ml_tag_threshold", "ml_drop_threshold", "ml_skip_registered",
                "ml_score_weight", "ml_min_words")
_ENGINE_SETTINGS = ("timezone", "shortcode")    # telfilter.toml [engine]: read at start only


async def _reload_model(pipe) -> str | None:
    """Re-read telfilter.toml's [ml] and load the model it names (SIGUSR1, `ctl reload model`, `ml promote`).
    Returns None, or why it was refused (the old model and [ml] settings keep serving). [engine] is read
    at start only."""
    return await under_way(pipe, _read_model(pipe))


async def _read_model(pipe) -> str | None:
    from .app import load_model
    from .config import ConfigError, load_settings
    from .ml.model import ModelError
    try:
        new = load_settings(pipe.settings.config_dir)
        if new.ml_enabled and new.ml_model and not (Path(new.ml_model) / "card.json").is_file():
            raise ModelError(f"[ml] model {new.ml_model!r} is not a model directory (no card.json there)")
        m = await _in_daemon_thread(load_model, new, name="model-reload")   # ~0.2 s of reading and checking
    except (ConfigError, ModelError) as e:
        log.error("model reload refused, old model keeps serving: %s", e)
        count_reload(pipe, "model", False)
        return str(e)
    for name in _ML_SETTINGS:                   # the pipeline reads them per message: in force from now on
        setattr(pipe.settings, name, getattr(new, name))
    pipe.swap_model(m)
    count_reload(pipe, "model", True)
    life.info("model loaded: %s", m.version if m else "none (ML stage off)")
    # [engine] is read at start only: a change is said (it was taken without a word, as if in force)
    pipe.engine_needs_restart = [k for k in _ENGINE_SETTINGS if getattr(new, k) != getattr(pipe.settings, k)]
    if pipe.engine_needs_restart:
        log.warning("telfilter.toml: [engine] %s changed; in force after a restart (a reload applies [ml] only)",
                    ", ".join(pipe.engine_needs_restart))
    return None


def model_stamp(config_dir) -> tuple | None:
    """What a model load would read now: telfilter.toml's [ml] settings and the files of the model directory they
    name, its links followed (`ml promote` swaps one); None when telfilter.toml cannot be read. serve takes it before
    its start loads the model and looks again once its signal handlers are in place: a promote in between (its
    control socket not up yet: "installed; … serve loads it when it starts"), a SIGUSR1 then ignored, or the
    files replaced by hand, was never loaded (until another reload)."""
    from .analyst.promote import FILES
    from .config import ConfigError, load_settings
    from .ml.model import default_model_dir
    try:
        s = load_settings(config_dir)
    except (ConfigError, OSError):
        return None
    d = Path(s.ml_model) if s.ml_model else default_model_dir()
    files = []
    for name in FILES:
        try:
            st = os.stat(d / name)
            files.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            files.append(None)
    return tuple(getattr(s, k) for k in _ML_SETTINGS), os.path.realpath(d), tuple(files)
