"""`telfilter serve`'s configuration: the config files (configcheck.load_config) and serve's own flags, validated
together before anything listens (every error found, as ConfigError)."""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

log = logging.getLogger("telfilter")


def load_serve_config(args):
    """Everything serve needs from config files and flags, validated before anything listens.
    Raises ConfigError with every error found."""
    from .config import ConfigError
    from .configcheck import load_config
    from .smpp_proxy.config_checks import MAX_SYSTEM_ID, host_port_error, octets_problem
    from .supervisor import worker_index
    cfg = load_config(getattr(args, "config", None))
    errors = list(cfg.errors)
    settings = cfg.smpp
    if settings is not None:
        for w in settings.warnings:             # an expired TLS certificate (smpp_proxy/tls.py): serve starts
            log.warning("%s", w)
        if args.smsc:
            settings.smsc = [a.strip() for a in args.smsc.split(",") if a.strip()]
        if args.smsc_system_id:
            settings.smsc_system_id = args.smsc_system_id
            bad = octets_problem(args.smsc_system_id, MAX_SYSTEM_ID)
            if bad:     # (as smpp.toml's [upstream] system_id: else the link's bind never encodes, nothing said)
                errors.append(f"--smsc-system-id {args.smsc_system_id!r}: the system_id {bad}")
    from .credentials import NO_ACCOUNTS, esme_accounts, merge_accounts, smsc_password
    pw = smsc_password(args, errors)
    if settings is not None and pw:
        settings.smsc_password = pw
    mutual = bool(settings.tls_listen and settings.tls_client_ca) if settings is not None else None
    extra = esme_accounts(args, errors, mutual_tls=mutual)
    if settings is not None:
        merge_accounts(settings.accounts, extra)
    if settings is not None and not settings.accounts and not errors:
        log.warning("%s", NO_ACCOUNTS)
    if settings is not None and not settings.smsc and not errors:     # (/healthz speaks of configured SMSCs only)
        log.warning("no SMSC (smpp.toml [upstream] smsc, --smsc): ESMEs can bind, and every submit_sm is answered "
                    "ESME_RTHROTTLED until one is configured and serve restarted")
    listens = [("--smpp-listen", args.smpp_listen, None), ("--metrics-listen", getattr(args, "metrics_listen", None), None)]
    if getattr(args, "sip_listen", None) not in (None, "off", ""):
        listens.append(("--sip-listen", args.sip_listen, 5060))
    for flag, value, default_port in listens:
        if value:
            err = _check_listen(flag, value, default_port)
            if err:
                errors.append(err)
    for a in (args.smsc or "").split(","):
        bad = a.strip() and ("expected HOST:PORT" if _port_of(a.strip(), None) is None else host_port_error(a.strip()))
        if bad:
            errors.append(f"--smsc {a.strip()!r}: {bad}")
    sip_on = getattr(args, "sip_listen", None) not in ("off", "")
    # --sip-next-hop and --sip-allow-networks are checked as with SIP on (a bad value is refused the same, exit 2
    # naming it: else the unit file that starts with SIP off fails the day it is turned on), and said to do nothing
    unused = [f for f, a in (("--sip-next-hop", "sip_next_hop"), ("--sip-allow-networks", "sip_allow_networks"))
              if not sip_on and getattr(args, a, None)]
    networks = None
    if getattr(args, "sip_allow_networks", None):
        from .sip_screen.settings import permitted_ranges
        networks = [n.strip() for n in args.sip_allow_networks.split(",") if n.strip()]
        for n in networks:
            try:
                permitted_ranges([n])
            except ValueError:
                errors.append(f"--sip-allow-networks: {n!r} is not an IP network")
                networks = []
    # (sip.toml's next_hop against sip.toml's networks: load_config checked it)
    next_hop = getattr(args, "sip_next_hop", None) or (cfg.sip.next_hop if cfg.sip is not None and networks else "")
    if next_hop and networks != []:
        from .sip_screen.settings import next_hop_outside
        try:           # as sip.toml's next_hop: host[:port][;transport=udp|tcp], inside the networks in force
            why = next_hop_outside(next_hop, networks if networks is not None else cfg.sip.allow_networks
                                   if cfg.sip is not None else [])
        except ValueError as e:
            why = str(e)
        if why:
            errors.append(f"--sip-next-hop: {why}" if getattr(args, "sip_next_hop", None) else
                          f"sip.toml next_hop (with --sip-allow-networks): {why}")
    listen = getattr(args, "sip_listen", None) or (cfg.sip.listen if cfg.sip is not None else "")
    hop = getattr(args, "sip_next_hop", None) or (cfg.sip.next_hop if cfg.sip is not None else "")
    if sip_on and listen and hop:
        from .sip_screen.settings import udp_family_mismatch
        try:
            why = udp_family_mismatch(listen, hop)
        except ValueError:
            why = None                  # (a malformed next hop or listen: said above)
        if why:
            errors.append(why)
    for flag, key, replaced in (("--log", "log", False), ("--ready-file", "ready_file", True)):
        path = getattr(args, key, None)
        err = output_file_error(flag, path, replaced) if path not in (None, "-") else None
        if err:
            errors.append(err)
    events = getattr(args, "events", None)
    if events:
        err = _check_events(events)
        if err:
            errors.append(err)
    if getattr(args, "metrics_listen", None):
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            errors.append("--metrics-listen needs prometheus_client (pip install prometheus_client)")
    if errors:
        raise ConfigError(errors)
    # (a pool's worker past 0 is given --sip-listen off by the supervisor, SIP being worker 0's: not the operator's)
    if unused and worker_index() == 0:
        log.warning("%s: no effect with --sip-listen off (checked all the same)", ", ".join(unused))
    return cfg, settings


def output_file_error(flag: str, path: str, replaced: bool) -> str | None:
    """Why serve cannot write the file `flag` names (--log, appended to; --ready-file, `replaced` through a temporary
    file beside it), else None; found before anything listens, with the other errors. A --log naming a directory
    was found once the lists and the state had loaded, said without the flag (`telfilter serve: /x: Is a
    directory`); a --ready-file naming one once serve listened (the rename over it failed, serve stopped)."""
    p = Path(path)
    parent = p.absolute().parent
    if p.is_dir():
        return f"{flag} {path}: is a directory (name the file to write)"
    if parent.exists() and not parent.is_dir():         # (said "does not exist" of a file that does)
        return f"{flag} {path}: its directory {parent} is not a directory"
    if not parent.is_dir():
        return f"{flag} {path}: its directory {parent} does not exist"
    if (replaced or not p.exists()) and not os.access(parent, os.W_OK | os.X_OK):
        return f"{flag} {path}: its directory {parent} is not writable"
    if p.exists() and not os.access(p, os.W_OK):        # (a FIFO, /dev/stderr: written to where they are)
        return f"{flag} {path}: not writable"
    return None


def open_verdict_log(make, args, *more):
    """`make(args.log, args.events, *more)`, serve's verdict log (VerdictLog or MeteredVerdictLog), a failure to
    open it or to bind its --events socket said naming the flag (cmd_serve: exit 2): the log's path alone was said
    (a FIFO with no reader), and a --events address in use or an ipc:// path in a missing directory was a
    ZMQError traceback, exit 1."""
    events = getattr(args, "events", None)
    try:
        return make(args.log, events, *more)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), f"--log {args.log}") from None
    except Exception as e:
        import zmq
        if not isinstance(e, zmq.ZMQError):
            raise
        # the system's words for a system errno (pyzmq's add "(addr='…')", the address the line names already)
        import errno
        why = os.strerror(e.errno) if e.errno in errno.errorcode else e.strerror
        raise OSError(e.errno, why, f"--events {events}") from None


def _check_events(value: str) -> str | None:
    """--events: a ZeroMQ endpoint this process can bind (tcp://HOST:PORT, ipc://PATH), checked before anything
    listens (zmq wraps a port over 65535 silently)."""
    scheme, sep, rest = value.partition("://")
    if sep and scheme == "ipc" and rest:
        return None
    if not sep or scheme != "tcp":
        return f"--events {value!r}: expected tcp://HOST:PORT (or ipc://PATH)"
    port = _port_of(rest, None)
    if port is None or not 0 < port:
        return f"--events {value!r}: expected tcp://HOST:PORT with a port of 1-65535"
    return None


def _port_of(value: str, default_port):
    host, sep, port = value.rpartition(":")
    if not sep:
        return default_port
    if not port.isdigit() or int(port) > 65535 or not host.strip("[]"):
        return None
    return int(port)


def _check_listen(flag: str, value: str, default_port) -> str | None:
    """A listen address that cannot be used is a start-up error, not a traceback after the
    other protocol is already listening."""
    port = _port_of(value, default_port)
    if port is None:
        return f"{flag} {value!r}: expected HOST:PORT"
    host = value.rpartition(":")[0].strip("[]") if ":" in value else value
    try:
        socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        return f"{flag} {value!r}: {e}"
    return None
