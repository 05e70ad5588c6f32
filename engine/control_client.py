"""The client of serve's control interface: `telfilter ctl`, and `ml promote`'s reload request.

One request a connection, line-delimited JSON (the protocol is engine/control.py's). A server busy
with its MAX_CONNECTIONS clients is asked again with a growing pause; `request_pool` asks every
worker of a `serve --workers N` pool for a reload, all at once (each holds its own rules, model, accounts and SIP
settings), `pool_stats` every worker for its counters (`ctl stats --pool`: summed). Exit statuses of `ctl`: 0 done, 1 refused (the answer says why), 2 no server.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

from .control import default_socket, worker_socket
from .control_reload import RELOAD_PARTS


class ControlUnavailable(Exception):
    """No serve answers on the control socket. `gone`: nothing listens there (no file, connection refused), as
    against a serve that did not answer in time or refused us."""

    def __init__(self, message: str, gone: bool = False):
        super().__init__(message)
        self.gone = gone


def request(path: Path, req: dict, timeout: float = 60.0) -> dict:
    """Send one request, return its answer. Raises ControlUnavailable when nothing listens. A server
    busy with MAX_CONNECTIONS other clients (it says so before reading anything: nothing was done) is
    asked again, with a growing pause, until `timeout` has passed: parallel `ctl` calls from a script
    wait their turn instead of failing with the exit status of a refused command."""
    import random
    import time
    end, pause = time.monotonic() + timeout, 0.02
    while True:
        ans = _request_once(path, req, max(0.1, end - time.monotonic()))
        if not ans.get("busy") or time.monotonic() + pause >= end:
            return ans
        time.sleep(pause * (0.5 + random.random()))
        pause = min(1.0, pause * 2)


def _request_once(path: Path, req: dict, timeout: float) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            # a path that is no socket (the data dir, a log named by mistake) was "Connection refused", as if a
            # serve had died there
            at = Path(path)
            why = e.strerror if not at.exists() or at.is_socket() else (
                "it is a directory" if at.is_dir() else "it is not a socket") + \
                ": name serve's control socket, DATA_DIR/control.sock or serve's --control-socket"
            raise ControlUnavailable(f"no telfilter serve answers on {path} ({why})", gone=True) from None
        except PermissionError as e:
            raise ControlUnavailable(f"{path}: {e.strerror} (run as the user serve runs as)") from None
        try:
            s.sendall(json.dumps(req).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass                    # answered and closed before our request went (busy, a refused uid): read why
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        raise ControlUnavailable(f"{path}: no answer within {timeout:g}s") from None
    except OSError as e:            # the server closed or reset the connection (EPIPE, ECONNRESET, ...)
        raise ControlUnavailable(f"{path}: the connection failed: {e.strerror or e}") from None
    finally:
        s.close()
    if not buf:
        raise ControlUnavailable(f"{path}: the server closed the connection without an answer")
    return json.loads(buf)


def _worker_of(p: Path, path: Path) -> int:
    """i when `p` is worker i's socket beside `path` (serve names it <stem>.w<i><suffix>), else -1."""
    path = Path(path)
    head, tail = f"{path.stem}.w", path.suffix
    name = p.name
    if not (name.startswith(head) and name.endswith(tail)):
        return -1
    digits = name[len(head):len(name) - len(tail)] if tail else name[len(head):]
    return int(digits) if digits.isdigit() else -1


def pool_sockets(path: Path) -> list[Path]:
    """The other workers' control sockets beside `path` (`serve --workers N`: <stem>.w<i><suffix>), in order."""
    path = Path(path)
    found = [p for p in path.parent.glob(f"{path.stem}.w*{path.suffix}") if _worker_of(p, path) > 0]
    return sorted(found, key=lambda p: _worker_of(p, path))


def request_pool(path: Path, req: dict, timeout: float = 60.0) -> dict:
    """`request` to worker 0 and, for a reload, to every other worker of a pool at the same time (each process holds
    its own rules, model, accounts and SIP settings): worker 0's answer, with `workers` {"1": answer, ...} and `ok`
    true only when every worker's is. Each worker is given `timeout`, all at once: stuck workers cost it once
    together (asked in turn, k stuck workers made a reload wait k timeouts). A worker socket nothing answers on (a
    worker restarting, or left by an earlier pool) is reported, not fatal; worker 0 not answering raises
    ControlUnavailable, as one serve's does (the others were asked all the same)."""
    others = pool_sockets(path) if req.get("cmd") == "reload" else []
    if not others:
        return request(path, req, timeout)
    workers = _ask_at_once({"0": path, **{str(_worker_of(p, path)): p for p in others}}, req, timeout)
    ans = workers.pop("0")
    if isinstance(ans, ControlUnavailable):
        raise ans
    ans["workers"] = {k: _answer_or(w, None) for k, w in workers.items()}
    if any(w.get("ok") is False for w in ans["workers"].values()):
        ans["ok"] = False
        ans.setdefault("error", "reload refused by a worker; see workers")
    return ans


def _add_up(total: dict, part: dict) -> None:
    for k, v in part.items():
        if isinstance(v, dict):                         # binds by account
            _add_up(total.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            total[k] = total.get(k, 0) + v


def _ask_at_once(sockets: dict, req: dict, timeout: float) -> dict:
    """{key: its socket's answer, else the ControlUnavailable it raised}, in the order of `sockets`, every socket
    asked at once (a thread each), each within `timeout`: stuck workers cost it once together."""
    if not sockets:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    def ask(p):
        try:
            return request(p, req, timeout)
        except ControlUnavailable as e:
            return e
    with ThreadPoolExecutor(max_workers=len(sockets)) as ex:
        return dict(zip(sockets, ex.map(ask, sockets.values())))


def _answer_or(ans, ok) -> dict:
    """A worker's answer, or for one that gave none {"ok": `ok`, "error": why}."""
    return {"ok": ok, "error": str(ans)} if isinstance(ans, ControlUnavailable) else ans


def pool_stats(path: Path, timeout: float = 60.0) -> dict:
    """`ctl stats --pool`: every worker's `stats` under `workers` {"0": ..., "1": ...} and their SMPP and SIP
    counters summed under `pool` (each worker counts its own connections' messages: the sum is the pool's). The
    workers are worker 0's `pool_size`, so one that does not answer (restarting) is named, `ok` false: partial.
    Outside a pool: that serve's stats alone. The others are asked at once, within what is left of `timeout`: the
    command takes one timeout however many workers are stuck."""
    import time
    end = time.monotonic() + timeout        # the whole command's: worker 0, then the others at once
    first = request(path, {"cmd": "stats"}, timeout)
    workers = {"0": first}
    others = _ask_at_once({str(i): worker_socket(path, i) for i in range(1, int(first.get("pool_size") or 1))},
                          {"cmd": "stats"}, max(0.1, end - time.monotonic()))
    workers.update((k, _answer_or(w, False)) for k, w in others.items())
    pool: dict = {"smpp": {}, "sip": {}}
    for w in workers.values():
        for part in pool:
            _add_up(pool[part], w.get(part) or {})
    away = [i for i, w in workers.items() if not w.get("ok")]
    ans = {"ok": not away, "pool": pool, "workers": workers}
    if away:
        ans["error"] = f"worker {', '.join(away)} did not answer: the pool figures are partial"
    return ans


def cmd_ctl(args) -> int:
    """`telfilter ctl`: 0 done, 1 refused by the server (the answer says why), 2 no server."""
    import sys
    from .cli_parser import command_error
    path = Path(args.socket) if getattr(args, "socket", None) else None
    if path is None:
        from .app import resolve_data_dir
        from .config import load_settings
        path = default_socket(resolve_data_dir(getattr(args, "data_dir", None), load_settings(getattr(args, "config", None)),
                                               seed=False))      # a client never seeds a data dir
    if args.ctlcmd == "lists":
        from .cli_parser import list_edit_extra
        try:
            extra = list_edit_extra(args)
        except ValueError as e:
            print(command_error(args, e), file=sys.stderr)
            return 2
        req = {"cmd": "lists", "op": args.lop, "kind": args.kind, "value": args.value, "channel": args.channel}
        if extra is not None:
            req["extra"] = extra
    elif args.ctlcmd == "reload":
        if getattr(args, "full", False) and args.parts and "lists" not in args.parts:     # it was ignored silently
            print(command_error(args, f"--full is for the lists part, not named in {' '.join(args.parts)}"),
                  file=sys.stderr)
            return 2
        req = {"cmd": "reload"}
        if args.parts:              # none named: every part, said by leaving "what" out (an empty list is refused)
            req["what"] = list(dict.fromkeys(args.parts))
        if getattr(args, "full", False):
            req["full"] = True
    else:
        req = {"cmd": args.ctlcmd}
    try:
        ans = (pool_stats(path, args.timeout) if getattr(args, "pool", False) and args.ctlcmd == "stats"
               else request_pool(path, req, args.timeout))
    except ControlUnavailable as e:
        print(command_error(args, e), file=sys.stderr)
        return 2
    print(json.dumps(ans, indent=2, ensure_ascii=False))
    lists_ans = ans.get("lists")
    if isinstance(lists_ans, dict):     # done, but not with the newest files (a corrupt snapshot, bad journal lines)
        for w in lists_ans.get("warnings") or ():
            print(f"telfilter ctl: warning: {w}", file=sys.stderr)
    if args.ctlcmd == "lists":          # as the offline `lists add` says them (expired mlexempt rows that left)
        for w in ans.get("warnings") or ():
            print(f"telfilter ctl: warning: {w}", file=sys.stderr)
    if not ans.get("ok"):
        for part in RELOAD_PARTS:        # every refused part's errors, path:line:col first on the line
            sub = ans.get(part)
            if isinstance(sub, dict) and not sub.get("ok", True):
                for err in sub.get("errors") or ([sub["error"]] if sub.get("error") else []):
                    print(err, file=sys.stderr)
        print(command_error(args, ans.get('error', 'refused')), file=sys.stderr)
        return 1
    if ans.get("found") is False:
        return 1
    return 0
