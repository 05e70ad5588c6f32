"""`telfilter serve`: the SMPP proxy and the SIP screen in one asyncio process.

Start-up validates every config file (telfilter.toml, smpp.toml, sip.toml, rules/) before
anything listens; an error is printed as path:line:col and the exit status is 2.

SIGHUP reloads rules (validated beside the running set; on error the old set stays and the
errors are logged with file:line:col), lists and the model; rule files are also watched and
reloaded when they change, and list snapshots written by the CLI (`telfilter lists ...`) are
picked up within a second. SIGUSR1 reloads only the model. SIGUSR2 reopens the verdict log (`--log FILE`) for logrotate.
SIGTERM/SIGINT stop gracefully (SmppProxy.drain and SipScreen.drain side by side, up to --drain-timeout) and exit 0.
`telfilter ctl` does the same (reload, drain) and more (stats, lists add/remove through this
process) over a Unix socket in the data dir: engine/control.py.

`--state redis://HOST:PORT/DB` shares judging state between processes and machines: counters
(engine/state/redis_store.py), DNC changes and spam reports (replication.py: caught up before
anything listens, then followed), per-account max binds and throughput (pool.py), and delivery
receipts: message ids and receipts held for an account bound elsewhere (receipts.py).
`--workers N` (N > 1, needs --state redis://) runs engine/supervisor.py instead: N of these
processes on the same ports.

Lists are loaded off the event loop and swapped in by reference; the DNC journal lines this
process appended while the load ran are then applied to the new lists (ListStore.catch_up),
so a subscriber's registration made during a reload is in force after it too.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path

from .cli_parser import command_error
from .listen import bind_error_text
from .serve_config import load_serve_config, open_verdict_log
from .serve_files import lock_serve_files, note_model_serve, stop_wait, take_over
# the reloads live in serve_reload.py; control.py, control_reload.py and tests import them from here too
from .serve_journal import catch_up_journal, compact_journal  # noqa: F401
from .serve_reload import (_reload_all, _reload_model, model_stamp, reload_lists, reload_rules,  # noqa: F401
                           say_lists_at_start)
from .serve_signals import OneAtATime, _announced, ignore_from_here
from .serve_stop import Opened
from .serve_watch import watch_files
from .servicelog import life, renamed_since_opened, reopen_verdict_log_soon, say_error, setup_service_logging

log = logging.getLogger("telfilter")

# After start-up the long-lived state (rules, lists, model, module objects) is moved out of the
# cyclic collector's way with gc.freeze(), and full (generation-2) collections are made rarer.
# Generation 0 keeps its default: a large gen-0 threshold made every young collection walk tens
# of thousands of objects and the worst pause grew (measured: 50,000 -> 150-250 ms worst pause;
# default 700,10,10 without freeze -> 100-130 ms; freeze + 700,10,100 -> 26-51 ms, over 100k judged
# messages). Most of what remains is per-sender counter state, which is not ours to flatten here.
GC_THRESHOLDS = (700, 10, 100)
MAX_WORKERS = 256                   # serve --workers at most (each a process with the lists and the model)


async def run_serve(args, ready=None):
    from .app import build
    from .pipeline import RuleWatcher
    from .smpp_proxy.idlog import IdLog
    from .smpp_proxy.server import SmppProxy
    from .verdictlog import VerdictLog
    from .memtune import fix_mmap_threshold
    fix_mmap_threshold()                # before the model and lists are read: reloads give their memory back
    model_read = model_stamp(getattr(args, "config", None))     # before the config check loads the model
    cfg, settings = load_serve_config(args)
    pipe = build(getattr(args, "config", None), getattr(args, "data_dir", None), seed=False, model=cfg.model)
    # one of `serve --workers N` (engine/supervisor.py)? worker 0 keeps the default socket and metrics
    from .supervisor import die_with_supervisor, worker_index
    worker, in_pool = worker_index(), "TELFILTER_WORKERS" in os.environ
    if in_pool:
        die_with_supervisor()
    # a pool worker's stop is its supervisor's SIGTERM; SIGINT stays ignored (supervisor._ignore_passed_signals: a
    # Ctrl-C reached each worker from the terminal and again from the supervisor, and the second cut the drain short)
    stops = (signal.SIGTERM,) if in_pool else (signal.SIGINT, signal.SIGTERM)
    # systemd Type=notify (engine/sdnotify.py). A pool's workers are not the unit's main process
    # (NotifyAccess=main would refuse them): they notify their supervisor's private socket, when it has one
    # (sdnotify.PoolNotify: it speaks to systemd for the pool)
    from .sdnotify import Notifier
    notifier = Notifier({"NOTIFY_SOCKET": os.environ.get("TELFILTER_NOTIFY_SOCKET", ""),
                         "WATCHDOG_USEC": os.environ.get("TELFILTER_WATCHDOG_USEC", "")} if in_pool else None)
    # what loads but never takes effect (engine/rules/lint.py): said once, by one process of a pool (reloads too)
    pipe.say_rule_warnings = worker == 0
    if pipe.say_rule_warnings:
        for w in [*pipe.rules.warnings, *pipe.rules.notes]:
            log.warning("rules: %s", w)
    # durable judging state (engine/state): loaded (snapshot + journal) before anything listens
    from .state import install, is_shared, open_state
    state_url = getattr(args, "state", None)
    o = Opened()      # what the start opens: closed in the stop's order, also when the start fails
    o.pipe = pipe     # (its reloads under way: waited for, or cancelled, before what they use is closed)
    try:
        state_store = o.state_store = open_state(state_url, pipe.store.dir)
        o.serve_lock = lock_serve_files(Path(pipe.store.dir), worker, stop_wait(args) if in_pool else 0.0)
        if args.ready_file and not in_pool:     # a killed serve's is not ours (after the lock: never a running one's)
            Path(args.ready_file).unlink(missing_ok=True)
        install(pipe, state_store)
        if worker == 0:                     # (a pool's workers read the same files)
            say_lists_at_start(pipe)
        replicator = None
        if is_shared(state_url):        # DNC changes shared through the same server: catch up before listening
            await state_store.start()
            from .state.replication import DncReplicator
            replicator = o.replicator = pipe.replicator = DncReplicator(state_url, pipe, writer=(worker == 0))
            replicator.changes_while_down()        # CLI DNC changes since the last clean stop (published.py)
            await replicator.catch_up()
            replicator.load_unpublished()          # what a stop while Redis was away could not publish
            replicator.publish_while_down()
        stop = asyncio.Event()
        control = ctl_base = None
        if getattr(args, "control_socket", None) != "off":      # before the ports: a socket in use is a start-up error
            from .control import ControlServer, default_socket, worker_socket
            sock = ctl_base = Path(getattr(args, "control_socket", None) or default_socket(pipe.store.dir))
            sock = worker_socket(sock, worker)
            control = ControlServer(pipe, sock, stop.set, args=args)
            await control.start()
            o.control = control
            life.info("control socket %s (telfilter ctl)", control.path)
            o.noted = note_model_serve(pipe.settings, ctl_base, worker)     # where `ml promote` finds it
        metrics = counted = None
        if getattr(args, "metrics_listen", None) and (worker == 0 or in_pool):
            # a pool's worker i > 0 counts too, and worker 0's /metrics asks it over its control socket
            # (metrics_pool.py)
            from .metrics import MeteredVerdictLog, Metrics
            counted = Metrics(pipe)
            vlog = o.vlog = open_verdict_log(MeteredVerdictLog, args, counted)
            metrics = o.metrics = counted if worker == 0 else None        # the HTTP listener: worker 0's
            if control is not None:         # from now: a `metrics` asked before the start is done says "starting"
                control.metrics = counted
        else:
            vlog = o.vlog = open_verdict_log(VerdictLog, args)
        if control is not None:
            control.vlog = vlog             # its list changes' records
        if getattr(args, "sip_listen", "off") not in ("off", "") and cfg.sip is not None:
            # the SIP screen's caps in the fd budget before anything listens: a budget that refuses them (or
            # lowers SMPP's for them) says so before SMPP takes connections (SipScreen.start claims the same again)
            from .fdbudget import FD_BUDGET
            FD_BUDGET.claim("sip", {"SIP max_tcp_connections": cfg.sip.max_tcp_connections,
                                    "SIP max_tcp_out_connections": cfg.sip.max_tcp_out_connections})
        proxy = o.proxy = SmppProxy(pipe, settings, vlog)
        if getattr(state_store, "spool", None) is not None:     # counts spooled at the proxy's flush points (inbox.py)
            state_store.spool.later = proxy.batch.later
        from .serve_reload import silent_symbols_vet
        pipe.rules_vet = silent_symbols_vet(getattr(args, "config", None), proxy)
        pool = receipts = shared_mo = None
        held_file = Path(pipe.store.dir) / "smpp" / (f"held_receipts.w{worker}.msgpack" if worker
                                                     else "held_receipts.msgpack")
        ids_file = held_file.with_name(held_file.name.replace("held_receipts", "message_ids"))
        idlog = o.idlog = IdLog(ids_file, proxy.msgid_account)
        o.ids_file = ids_file
        # the files of a pool's workers no longer started (--workers lowered): read by this worker, not lost
        taken = await asyncio.to_thread(take_over, Path(pipe.store.dir), worker, in_pool, args, ctl_base, control)
        o.taken = taken
        their_ids = taken.files("message_ids", ".msgpack")
        if replicator is not None:      # max binds and throughput per account hold across processes
            from .state.pool import PoolLimits
            from .state.receipts import SharedReceipts
            pool = PoolLimits(state_store, proxy)
            receipts = SharedReceipts(state_store, proxy)   # a receipt reaches its account whichever link it came on
            from .state.mo_parts import SharedMoParts
            # a 5656 message in parts is one, whichever link they came on
            shared_mo = SharedMoParts(state_store, proxy)
            o.pool, o.receipts, o.shared_mo = pool, receipts, shared_mo
            await shared_mo.restore()                       # those a stop left waiting for the rest
            idlog.open(asyncio.get_running_loop(), their_ids)   # the last run's ids (its own and learned)
            o.ids_read = True
            await receipts.catch_up()                       # then the stream's newer ones
        else:
            idlog.open(asyncio.get_running_loop(), their_ids)   # the last run's ids (a crash too); journalled from now
            o.ids_read = True
        # what was held when the last run ended (a crash too); journalled from now
        proxy.open_held(held_file, taken.files("held_receipts", ".msgpack"))
        # ads scheduled ahead the last run left (a crash too): cancelled if their recipient registers DK DNC; journalled
        proxy.scheduled.open(held_file.with_name(held_file.name.replace("held_receipts", "scheduled_ads")).with_suffix(
            ".journal"), asyncio.get_running_loop(), int(proxy.clock().timestamp()), proxy.stats,
            adopt=taken.files("scheduled_ads", ".journal"))
        # 5656 message parts acknowledged, their message not yet judged
        proxy.open_mo_parts(held_file.with_name(held_file.name.replace("held_receipts", "mo_parts")).with_suffix(
                            ".journal"),
                            asyncio.get_running_loop(), taken.files("mo_parts", ".journal"))
        # every port is bound before any takes a connection (and before an SMSC link binds): a port in use stops the
        # start with nothing answered
        # a bind error named as the SIP screen's is (asyncio's: "error while attempting to bind on address …")
        try:
            await proxy.start(args.smpp_listen, reuse_port=in_pool, serve=False)
        except OSError as e:
            where = args.smpp_listen or settings.listen
            if proxy.server is not None or not where:       # the plain listener is up (or there is none): the TLS one
                where = f"{settings.tls_listen} (TLS)"
            raise OSError(e.errno, f"SMPP listen {where}: {bind_error_text(e)}") from None
        sip = None
        if getattr(args, "sip_listen", "off") not in ("off", ""):        # None: sip.toml's listen
            from .sip_screen.server import start_sip
            args.reuse_port = in_pool
            sip = o.sip = await start_sip(pipe, args, vlog, serve=False)
        if counted is not None:
            counted.proxy, counted.sip, counted.state = proxy, sip, state_store
        if metrics is not None:
            if in_pool:
                from .metrics_pool import pool_of
                metrics.pool = pool_of(ctl_base)
            try:
                await metrics.start(args.metrics_listen, serve=False)
            except OSError as e:
                raise OSError(e.errno, f"--metrics-listen {args.metrics_listen}: {bind_error_text(e)}") from None
        await proxy.begin()
        life.info("SMPP proxy listening on %s (port %d), upstream %s",
                  args.smpp_listen or settings.listen or "(TLS only)",
                  proxy.port, ",".join(settings.smsc) or "none")
        if proxy.tls_server is not None:
            life.info("SMPP over TLS listening on %s (port %d)%s", settings.tls_listen, proxy.tls_port,
                      (", client certificates required" + (", revocation list " + settings.tls_client_crl
                                                            if settings.tls_client_crl else ""))
                      if settings.tls_client_ca else "")
        if sip is not None:
            await sip.begin()
        if metrics is not None:
            await metrics.server.start_serving()
            life.info("metrics on http://%s/metrics (port %d), /healthz, /readyz, /livez", args.metrics_listen,
                      metrics.port)
        if control is not None:
            control.proxy, control.sip = proxy, sip
        loop = asyncio.get_running_loop()
        tasks = set()

        def spawn(coro):
            t = asyncio.ensure_future(coro)
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        for sig in stops:
            loop.add_signal_handler(sig, stop.set)
        hup = OneAtATime(lambda: _announced(notifier, _reload_all(pipe)), "SIGHUP")
        usr1 = OneAtATime(lambda: _reload_model(pipe), "SIGUSR1")
        loop.add_signal_handler(signal.SIGHUP, lambda: hup.ask(spawn))      # (a burst: two reloads, not one each)
        loop.add_signal_handler(signal.SIGUSR1, lambda: usr1.ask(spawn))
        # SIGHUP is taken by reloads (as in named, rspamd); SIGUSR2 reopens the verdict log (as in
        # nginx's USR1): `postrotate kill -USR2 $(cat telfilter.pid)`; the new file is opened off the loop
        loop.add_signal_handler(signal.SIGUSR2, lambda: spawn(reopen_verdict_log_soon(vlog, args.log)))
        if renamed_since_opened(vlog, args.log):        # rotated while serve started (its SIGUSR2 ignored then)
            spawn(reopen_verdict_log_soon(vlog, args.log))
        # the model promoted (or [ml] edited) after the start loaded it: `ml promote` found no control socket yet,
        # a SIGUSR1 was ignored; loaded now, as that reload would have
        if model_stamp(getattr(args, "config", None)) != model_read:
            life.info("the model or telfilter.toml's [ml] changed while serve started: loading it")
            usr1.ask(spawn)
        watcher = RuleWatcher(pipe)

        wt = asyncio.create_task(watch_files(pipe, watcher, notifier, lambda: _status_line(proxy, sip)))
        o.st_task = asyncio.create_task(state_store.run())
        o.follow = asyncio.create_task(replicator.follow()) if replicator is not None else None
        o.pool_task = asyncio.create_task(pool.run()) if pool is not None else None
        o.receipts_task = asyncio.create_task(receipts.run()) if receipts is not None else None
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        if counted is not None:             # worker 0's /readyz; a worker's `metrics` answer (metrics_pool.answer)
            counted.ready = True
        ready_file = None
        if args.ready_file:
            # a pool's own: the supervisor's
            ready_file = Path(f"{args.ready_file}.w{worker}" if in_pool else args.ready_file)
            from .durable import replace_file       # whole or not at all: a script reading it sees every port
            replace_file(ready_file, (f"smpp {proxy.port}\n" + (f"sip {sip.port}\n" if sip else "")
                                      + (f"metrics {metrics.port}\n" if metrics else "")).encode())
        if ready is not None:
            ready.set_result((proxy, sip))
        notifier.ready(_status_line(proxy, sip))        # every listener up, the state loaded
        notifier.start_watchdog(loop)
    except BaseException:   # a port in use, a model or state error, a SIGINT: nothing left open behind it
        await o.close()
        raise
    await stop.wait()
    notifier.stopping()
    if ready_file is not None:              # not ready any more: draining, then gone
        try:
            ready_file.unlink()
        except OSError:
            pass
    if metrics is not None:
        metrics.ready = False
    wt.cancel()
    # no reload either (each queued its reading in the executor ahead of the stop's: SIGUSR1s held a 1 s stop 37 s),
    # nor the one more a signal asked after the one under way
    ignore_from_here(loop, (signal.SIGHUP, signal.SIGUSR1))
    hup.stop()
    usr1.stop()
    life.info("stopping: draining for up to %.1fs", getattr(args, "drain_timeout", 10.0))
    # a second SIGTERM/SIGINT cuts the drain short (an operator who means it)
    force = asyncio.Event()
    for sig in stops:
        loop.add_signal_handler(sig, force.set)
    # --drain-timeout bounds the whole stop, up to the process's exit: the drains (SMPP, and SIP beside: sip_screen/
    # draining.py) leave a little (1/20, at most 0.5 s) for closing sockets, the store's last flush and exit
    budget = getattr(args, "drain_timeout", 10.0)
    stop_started, drain_budget = loop.time(), max(0.0, budget - min(0.5, budget / 20))
    drain = asyncio.gather(proxy.drain(drain_budget), *([sip.drain(drain_budget)] if sip else ()))
    forced = asyncio.ensure_future(force.wait())
    await asyncio.wait([drain, forced], return_when=asyncio.FIRST_COMPLETED)
    if not drain.done():
        log.warning("second stop signal: drain cut short, submits still in flight get no answer")
        # its CancelledError taken here: left alone, asyncio logged it at the exit as an ERROR with a traceback
        drain.add_done_callback(lambda f: f.cancelled() or f.exception())
        drain.cancel()
    forced.cancel()
    # a command under way (a reload) is answered, a reload under way let finish, within what is left of the budget;
    # then the rest closed in order
    status = await o.close(control_wait=max(0.0, min(5.0, drain_budget - (loop.time() - stop_started))))
    # nothing reopens, no stop is left to cut short (a SIGTERM in the finalisation: a death by 15 whatever `status`)
    ignore_from_here(loop, (signal.SIGUSR2, signal.SIGINT, signal.SIGTERM))
    notifier.close()
    life.info("stopped" if not status else "stopped, state not saved")
    return status


def _status_line(proxy, sip) -> str:
    """systemd's STATUS= (`systemctl status`): the listeners, the ESME binds and the SMSC links bound."""
    binds = sum(len(b) for b in proxy.binds.values())
    links = [l for l in proxy.links if l.bound]
    smsc = len(proxy.settings.smsc)
    line = f"SMPP port {proxy.port}: {binds} ESME bind{'s' * (binds != 1)}"
    if smsc:
        line += f", {len(links)} SMSC link{'s' * (len(links) != 1)} bound ({smsc} SMSC configured)"
    return line + (f"; SIP port {sip.port}" if sip is not None else "")


def cmd_serve(args) -> int:
    # until the event loop's handlers are in place (after config, lists, model and listeners), a
    # reload or log-reopen signal -- logrotate's SIGUSR2 during a restart -- must not kill the process
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    setup_service_logging(args.verbose, getattr(args, "log_format", "text"))
    from .credentials import state_url
    args.state = state_url(args)
    workers = getattr(args, "workers", 1)
    if not 1 <= workers <= MAX_WORKERS:
        # (a typo's 1000 started a thousand processes, each loading the lists and the model)
        say_error(command_error(args, f"--workers {workers}: 1 to {MAX_WORKERS}"))
        return 2
    if workers > 1:
        from .state import is_shared
        if not is_shared(getattr(args, "state", None)):
            say_error(command_error(args, f"--workers {workers} needs --state redis://HOST:PORT/DB: the workers must "
                                    "share counters and DNC changes (N embedded stores would be N separate policies)"))
            return 2
        from .state import StateError
        from .state.url import parse_url
        try:
            parse_url(args.state)
        except StateError as e:
            say_error(command_error(args, e))
            return 2
        from .supervisor import supervise
        return supervise(args)
    try:
        return asyncio.run(run_serve(args))
    except OSError as e:    # as cli.main prints one: 'FILE: why' or the message alone, never "[Errno 98] …"
        where = f"{e.filename}: " if e.filename else ""
        say_error(command_error(args, f"{where}{e.strerror or e}"))
        return 2
    except Exception as e:
        from .ml.model import ModelError
        from .state import StateError
        if not isinstance(e, (StateError, ModelError)):
            raise
        say_error(command_error(args, e))
        return 2
