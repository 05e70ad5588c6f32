"""`telfilter serve`: the SMPP proxy and the SIP screen in one asyncio process.

SIGHUP reloads rules (validated beside the running set; on error the old set stays and the
errors are logged with file:line:col), lists and the model; rule files are also watched and
reloaded when they change. SIGUSR1 reloads only the model.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

log = logging.getLogger("telfilter")


def _reload_all(pipe, store, with_model=True):
    pipe.reload_rules()
    try:
        new = store.load()
        for w in store.warnings:
            log.warning("%s", w)
        pipe.lists = new
        log.info("lists reloaded")
    except Exception as e:          # SnapshotError and friends: keep the old lists
        log.error("lists reload refused, old lists stay in force: %s", e)
    if with_model:
        _reload_model(pipe)


def _reload_model(pipe):
    from .app import load_model
    from .ml.model import ModelError
    try:
        m = load_model(pipe.settings)
    except ModelError as e:
        log.error("model reload refused, old model keeps serving: %s", e)
        return
    pipe.swap_model(m)
    log.info("model loaded: %s", m.version if m else "none")


async def run_serve(args, ready=None):
    from .app import build
    from .pipeline import RuleWatcher
    from .smpp_proxy.accounts import account_from_arg, load_smpp_settings
    from .smpp_proxy.server import SmppProxy, VerdictLog
    pipe = build(getattr(args, "config", None), getattr(args, "data_dir", None))
    settings = load_smpp_settings(pipe.settings.config_dir)
    if args.smsc:
        settings.smsc = [a.strip() for a in args.smsc.split(",") if a.strip()]
    if args.smsc_system_id:
        settings.smsc_system_id = args.smsc_system_id
    if args.smsc_password:
        settings.smsc_password = args.smsc_password
    for a in args.esme_account:
        acc = account_from_arg(a)
        settings.accounts[acc.system_id] = acc
    vlog = VerdictLog(args.log, getattr(args, "events", None))
    proxy = SmppProxy(pipe, settings, vlog)
    await proxy.start(args.smpp_listen)
    log.warning("SMPP proxy listening on %s (port %d), upstream %s", args.smpp_listen, proxy.port, ",".join(settings.smsc) or "none")
    sip = None
    if getattr(args, "sip_listen", "off") not in (None, "off", ""):
        from .sip_screen.server import start_sip
        sip = await start_sip(pipe, args, vlog)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload_all(pipe, pipe.store))
    loop.add_signal_handler(signal.SIGUSR1, lambda: _reload_model(pipe))
    watcher = RuleWatcher(pipe)

    async def watch():
        while True:
            await asyncio.sleep(1.0)
            watcher.poll()
    wt = asyncio.create_task(watch())
    if args.ready_file:
        Path(args.ready_file).write_text(f"smpp {proxy.port}\n" + (f"sip {sip.port}\n" if sip else ""))
    if ready is not None:
        ready.set_result((proxy, sip))
    await stop.wait()
    wt.cancel()
    await proxy.stop()
    if sip:
        await sip.stop()
    vlog.close()
    return 0


def cmd_serve(args) -> int:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    logging.getLogger("telfilter").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return asyncio.run(run_serve(args))
    except OSError as e:
        print(f"telfilter serve: {e}", file=sys.stderr)
        return 2
