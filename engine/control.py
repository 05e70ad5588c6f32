"""The local control interface of `telfilter serve` (its client, `telfilter ctl`: engine/control_client.py).

Theory of operation. `serve` listens on a Unix stream socket, by default DATA_DIR/control.sock,
created mode 0600 (umask 077 while it is bound), so only the serve user can connect to it: the
file permissions are the authentication, as with kamcmd's BINRPC socket. Each accepted peer is
also checked with SO_PEERCRED: its uid must be ours or root, otherwise it gets one error line
and is closed. Nothing listens on the network.

The protocol is line-delimited JSON: one request object a line, one answer object a line, in
order. Requests are bounded (MAX_LINE bytes; a longer line is answered with an error and the
connection closed), a request line must arrive within REQUEST_TIMEOUT seconds of the last
answer and the peer must take each answer within as long (else it is closed), and at most MAX_CONNECTIONS peers are served at once (one more is answered "busy" and
closed). The server runs on serve's own event loop: a command touches engine state only from
the loop, and slow work (list files) runs in a worker thread as the signal-driven reloads do.

Requests (answers carry "ok": true|false, and "error" when false; a key a command does not take, or one of the
wrong type, refuses the request and names the key: engine/control_keys.py):
  {"cmd": "stats"}     SmppProxy.stats and held_total (receipts held now), SipScreen.stats, list
                       sizes, rules (count, generation, last refused reload), model version.
  {"cmd": "reload", "what": [PART...]}
                       PART: rules, lists, model (as SIGHUP), accounts, sip; "what" absent or null = all five
                       ([] is refused: it names no part).
                       Each part is validated whole and either put in force or refused with
                       its errors as path:line:col, the old version staying in force; the
                       answer has one entry per part. accounts re-reads smpp.toml's
                       [[account]] tables and --esme-accounts-file (live binds keep or lose
                       their bind as smpp_proxy/live_accounts.py says), and the TLS
                       listener's tls_cert, tls_key, tls_client_ca, tls_client_crl (other smpp.toml
                       settings are listed as needing a restart when they changed); sip
                       re-reads sip.toml (sip_screen/live_settings.py: listen and advertise
                       need a restart). "full": true reads every list again (else a lists
                       reload reads only the lists whose files changed); its answer names the
                       lists read again ("read") and those kept ("kept"); a rules reload put in
                       force, what it changed ("changes": RuleSet.changes_from).
  {"cmd": "drain"}     the graceful stop of SIGTERM; answered before the drain starts.
  {"cmd": "metrics"}   this process's /metrics families as JSON and its /healthz verdict (engine/metrics_pool.py:
                       how worker 0 of a --workers pool shows the others); answered at once, beside a command under
                       way (it reads what a scrape reads, on the loop).
  {"cmd": "lists", "op": "add"|"remove", "kind": K, "value": V, "channel": "S|V|SV",
   "extra": [...]}     the server is the one writer. DNC changes go the way of a 5656 command:
                       journalled durably (append under journal.lock) and then applied to the
                       in-memory lists, so they are in force for the next message once answered.
                       Other kinds go the way of the CLI (ListStore read-modify-write under
                       write.lock, in a worker thread), then the lists are reloaded before the
                       answer. Either way the lock protocol of engine/lists/journal.py holds.
                       Each change made is an audit record (engine/control_lists.py).
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import socket
import stat
import struct
from pathlib import Path

from .control_keys import request_error
from .control_lists import ListCommands
from .control_reload import ReloadCommands
from .listen import addr_text
from .reload_counts import reload_counts
from .supervisor import pool_worker

log = logging.getLogger("telfilter")

MAX_LINE = 64 * 1024
REQUEST_TIMEOUT = 30.0
MAX_CONNECTIONS = 4
SOCKET_NAME = "control.sock"


def default_socket(data_dir) -> Path:
    return Path(data_dir) / SOCKET_NAME


def worker_socket(base, i: int) -> Path:
    """Worker i's control socket in a `serve --workers N` pool: <stem>.w<i><suffix> beside `base` (worker 0's)."""
    base = Path(base)
    return base.with_name(f"{base.stem}.w{i}{base.suffix}") if i else base


_PEER_UID = contextvars.ContextVar("peer_uid", default=None)     # the uid of the peer a command came from


def peer_uid(sock) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED), or None where it cannot be read."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    return struct.unpack("3i", raw)[1]


def _socket_state(path: Path) -> str:
    """What is at a control socket's path: "absent", "not a socket", "answers" (a serve listens there) or "stale"
    (a socket nothing answers on: its serve was killed). Another error connecting is raised."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return "not a socket"
    except FileNotFoundError:
        return "absent"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return "answers"
    except (ConnectionRefusedError, FileNotFoundError):
        return "stale"
    finally:
        probe.close()


def remove_stale_socket(path: Path) -> bool:
    """Remove a control socket nothing answers on (its serve was killed: a worker of a pool since made smaller,
    whose files this process took over). True when removed."""
    path = Path(path)
    try:
        if _socket_state(path) != "stale":
            return False
    except OSError:
        return False
    path.unlink(missing_ok=True)
    return True


class ControlServer(ReloadCommands, ListCommands):
    """Serves control requests for one running serve. `on_drain` is serve's stop trigger."""

    def __init__(self, pipe, path: Path, on_drain, proxy=None, sip=None, args=None):
        self.pipe, self.path, self.on_drain = pipe, Path(path), on_drain
        self.proxy, self.sip = proxy, sip
        self.vlog = None                 # serve's verdict log: a list change's record (set once it is open)
        self.metrics = None              # what `metrics` answers with (set by serve with --metrics-listen)
        self.args = args                 # serve's command line: what overrides the files on a reload
        self.server = None
        self.active = 0
        self.last_reload: dict | None = None
        self.starting: str | None = None     # a start-up wait under way (serve_files.take_over): every command's answer
        self.stopped = False             # stop() ran: a peer connected before it is refused what it asks after it
        self._lock = asyncio.Lock()      # one command at a time: a reload never interleaves a lists write

    async def start(self) -> None:
        if not self.path.parent.is_dir():
            # made with its parents, it was: a mistyped --control-socket put directories anywhere (as root, under /)
            # and the ctl of the right path found no serve
            raise OSError(f"--control-socket {self.path}: {self.path.parent} is not a directory "
                          "(name a socket in an existing directory, or --control-socket off)")
        state = _socket_state(self.path)
        if state == "not a socket":
            raise OSError(f"{self.path}: exists and is not a socket (not removed): pass another --control-socket")
        if state == "answers":
            raise OSError(f"{self.path}: another telfilter serve answers on this control socket")
        if state == "stale":
            self.path.unlink(missing_ok=True)       # left by a serve that was killed
        if len(os.fsencode(self.path)) > 107:      # sun_path is 108 bytes on Linux
            raise OSError(f"{self.path}: control socket path longer than 107 bytes "
                          "(pass --control-socket SHORTER_PATH, or --control-socket off)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)            # the file is created 0600: no window where others may connect
        try:
            sock.bind(str(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.server = await asyncio.start_unix_server(self._serve_peer, sock=sock, limit=MAX_LINE)

    async def stop(self, wait: float = 5.0) -> None:
        """No new peers; a command under way (a reload loading a model in a thread) is let finish and answered,
        for up to `wait` seconds: else serve's exit cancelled it, its client got no answer and the log an
        asyncio traceback."""
        self.stopped = True
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            # a read-only disk: said, and the rest of the stop still runs (raised, it ended serve here, exit 2)
            log.warning("control socket %s not removed (%s): the next start replaces it", self.path, e)
        if not self._lock.locked():      # (none under way: wait_for(acquire(), 0) would time out all the same)
            return
        try:
            await asyncio.wait_for(self._lock.acquire(), wait)
        except asyncio.TimeoutError:
            # (a reload it began may still end within the stop's wait for reloads under way, serve_stop.settle_reloads,
            # and be answered then)
            log.warning("control command still running at the stop: its client is answered only if it ends before "
                        "serve exits")
        else:
            await asyncio.sleep(0)       # its answer's write
            self._lock.release()

    async def _serve_peer(self, reader, writer):
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            if uid is not None and uid not in (os.getuid(), 0):
                await self._answer(writer, {"ok": False, "error": f"uid {uid} may not use this control socket"})
                return
            if self.active >= MAX_CONNECTIONS:     # before any request is read: nothing done, the client may retry
                await self._answer(writer, {"ok": False, "busy": True,
                                            "error": f"busy: {MAX_CONNECTIONS} control connections already open"})
                return
            self.active += 1
            try:
                _PEER_UID.set(uid)               # (this peer's task: its commands' audit lines name it)
                await self._requests(reader, writer)
            finally:
                self.active -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.TimeoutError:     # a peer that does not read its answers: drop what it was owed
            writer.transport.abort()
        except asyncio.CancelledError:   # serve's exit with this peer connected (after stop() let its command end)
            pass
        finally:
            writer.close()

    async def _requests(self, reader, writer):
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            except asyncio.TimeoutError:
                return
            except (ValueError, asyncio.LimitOverrunError):     # a line over MAX_LINE
                await self._answer(writer, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                return
            if not line:
                return
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("a request is a JSON object")
            except ValueError as e:
                await self._answer(writer, {"ok": False, "error": f"bad request: {e}"})
                continue
            if self.starting is not None:
                await self._answer(writer, {"ok": False, "starting": True, "error": self.starting})
                continue
            if req.get("cmd") == "metrics":     # not behind a reload's lock: a scrape of the pool waits 0.5 s at most
                ans = await self._run(req)
            else:
                async with self._lock:
                    ans = await self._run(req)      # (refused once the stop ran: its turn may come after it)
            await self._answer(writer, ans)
            if req.get("cmd") == "drain" and ans.get("ok"):
                self.on_drain()
                return

    async def _run(self, req: dict) -> dict:
        if self.stopped:
            # serve's stop goes on after this one (the state closed, DNC replication closed): a `lists add` run now
            # was answered ok and in force here, its publication queued after the replication had closed, never
            # published to the other nodes nor saved for the next start
            return {"ok": False, "stopping": True, "error": "serve is stopping: nothing done (ask again once it is "
                                                            "back, or another node)"}
        try:
            return await self.handle(req)
        except Exception as e:          # a bug in one command (a collector's, for `metrics`) must not take serve down
            log.exception("control command %r failed", req.get("cmd"))
            return {"ok": False, "error": f"{e.__class__.__name__}: {e}"}

    @staticmethod
    async def _answer(writer, ans: dict) -> None:
        writer.write(json.dumps(ans, ensure_ascii=False, default=str).encode() + b"\n")
        # bounded as the wait for a request is: a peer that sends requests and never reads the answers
        # would otherwise keep its slot (and MAX_CONNECTIONS of them the socket) for as long as it stays connected
        await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)

    # ------------------------------------------------------------------ commands
    async def handle(self, req: dict) -> dict:
        cmd = req.get("cmd")
        if (why := request_error(req)) is not None:
            return {"ok": False, "error": f"bad request: {why}"}
        if cmd == "stats":
            # the lists' figures walk the DNC bitmaps and the registry: 46-62 ms at 10M numbers and 200k rows, which a
            # NOC polling `ctl stats` took from the loop each time. Read in a worker thread (the lists are swapped
            # whole by a reload, never edited in place but for a DNC bitmap's single add or discard)
            figures = await asyncio.to_thread(self.pipe.lists.stats, self._today())
            return {"ok": True, **self.stats(figures)}
        if cmd == "reload":
            return await self.reload(req.get("what"), req.get("full", False))
        if cmd == "metrics":
            from .metrics_pool import answer
            return answer(self.metrics)
        if cmd == "drain":
            log.info("drain requested on the control socket")
            return {"ok": True, "draining": True}
        if cmd == "lists":
            return await self.audited_lists(req, _PEER_UID.get())
        return {"ok": False, "error": f"unknown command {cmd!r}; one of stats, reload, drain, lists, metrics"}

    def _today(self):
        """The local day of the `[engine] timezone`, as the pipeline reads an mlexempt row (stats: those in force)."""
        from .lists.mlexempt import today
        return today(getattr(self.pipe, "tz", None))

    def _rules_gen(self) -> int:
        return self.pipe.rules_generation

    def stats(self, list_figures: dict | None = None) -> dict:
        pipe = self.pipe
        model = pipe.model
        smpp = dict(getattr(self.proxy, "stats", {}) or {})
        if hasattr(self.proxy, "held_total"):
            # receipts held now (receipts_held counts every one ever held): the README's downgrade step reads it
            smpp["held_total"] = self.proxy.held_total
        if self.proxy is not None:
            # what an operator asks first (only /metrics said it): each account's binds, each SMSC link's state
            smpp["binds"] = {a: len(b) for a, b in sorted(getattr(self.proxy, "binds", {}).items()) if b}
            smpp["smsc_links"] = [{"smsc": addr_text(*link.addr[:2]), "kind": link.kind, "bound": bool(link.bound),
                                   "window": len(link.window.pending)}
                                  for link in list(getattr(self.proxy, "links", ()))
                                  if hasattr(link, "addr") and hasattr(link, "window")]
        return {
            "smpp": smpp,
            "sip": dict(getattr(self.sip, "stats", {}) or {}) if self.sip is not None else None,
            "lists": list_figures if list_figures is not None else pipe.lists.stats(self._today()),
            "lists_reloads": dict(getattr(pipe, "lists_reloads", None) or {"ok": 0, "refused": 0}),
            "reloads": reload_counts(pipe),
            "rules": {"directory": str(getattr(pipe.rules, "directory", "")), "rules": len(pipe.rules.rules),
                      "generation": self._rules_gen(),
                      "reload_errors": [str(e) for e in getattr(pipe, "rule_errors", ())]},
            "model": {"version": str(model.version) if model is not None else None},
            # a `serve --workers N` pool: these are this worker's counters (each worker has its socket, `.wN`)
            **({"worker": w, "pool_size": int(os.environ.get("TELFILTER_WORKERS", "1"))}
               if (w := pool_worker()) is not None else {}),
        }
