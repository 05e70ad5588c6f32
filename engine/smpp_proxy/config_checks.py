"""Range and shape checks of smpp.toml's values, after the schema check (names and types): a value
of the right type that cannot work -- a negative timeout, a window of 0, a port past 65535, an SMSC
address without a port, a system_id longer than SMPP allows -- is an error at its line, not a proxy
that starts and misbehaves. Pure: (path, text, raw tables) -> ["path:line:1: message", ...]."""
from __future__ import annotations

import ipaddress

import math

from .codec import encode_text
from .reply_parts import MAX_PARTS, cuts

LONG_REPLIES = ("parts", "payload")     # [shortcode] long_replies (shortcode_replies.py)

# [server] key -> (lowest, highest or None, unit/why)
SERVER_RANGES = {
    "max_pdu": (256, 16 << 20, "bytes (a submit_sm with 254 octets of text needs ~300)"),
    "idle_timeout": (1, None, "seconds"),
    "enquire_link_interval": (1, None, "seconds"),
    "concat_timeout": (0.1, None, "seconds"),
    "concat_memory": (1, None, "seconds"),
    "max_connections": (1, None, "connections"),
    "max_connections_per_source": (1, None, "connections"),
    "bind_timeout": (0.1, None, "seconds"),
    "bind_failures_free": (0, None, "failures"),
    "bind_backoff": (0, None, "seconds"),
    "bind_backoff_max": (0, None, "seconds"),
    "max_pending_concat": (1, None, "messages"),
    "max_pending_concat_bytes": (65536, None, "bytes"),
    "max_message_chars": (160, None, "characters (one SMS holds up to 160)"),
    "max_schedule_days": (1, 366, "days (a row counted at delivery lives until its newest delivery)"),
    "receipt_wait": (0, None, "seconds"),
    "max_early_receipts": (0, None, "receipts"),
    "max_held_receipts": (0, None, "receipts"),
    "max_held_per_account": (0, None, "receipts (0: half of max_held_receipts, all with one account)"),
    "max_held_days": (0.01, None, "days"),
    "tls_handshake_timeout": (0.1, None, "seconds"),
    "tls_handshakes_per_second": (1, None, "handshakes a second (each ~0.45 ms of the event loop)"),
    "tls_handshakes_per_source": (0.01, None, "handshakes a second"),
    "tls_handshakes_per_source_burst": (1, None, "handshakes"),
    "other_requests_per_second": (0.01, None, "PDUs a second (an ESME sends an enquire_link every 30-60 s)"),
    "other_requests_burst": (2, None, "PDUs (a full bucket ends a flood's count of refusals: 1 would end it at each token)"),
    "other_requests_refused_close": (0, None, "PDUs (0: never closed)"),
}
UPSTREAM_RANGES = {"window": (1, 65535, "requests"), "response_timeout": (0.1, None, "seconds"),
                   "stall_after": (0.1, None, "seconds")}
LINK_KEYS = {"address": (str,), "response_timeout": (int, float), "window": (int,), "id_space": (str,),
             "tls": (bool,), "tls_ca": (str,), "tls_server_name": (str,)}        # tls.py
MAX_SYSTEM_ID, MAX_PASSWORD = 15, 8            # SMPP 3.4 §5.2: C-Octet strings of 16 and 9 with their NUL


def octets_problem(value: str, most: int) -> str | None:
    """Why `value` cannot go in a bind's C-Octet String of `most` octets (the codec writes Latin-1: one octet
    a character, 0-255), else None. Says nothing of the value itself (it may be a password)."""
    try:
        n = len(value.encode("latin-1"))
    except UnicodeEncodeError:
        return "has characters outside Latin-1 (an SMPP C-Octet String carries octets 0-255)"
    return f"is {n} octets, over SMPP 3.4's {most} (the SMSC would refuse the bind)" if n > most else None


def _range(where, table, key, v, lo, hi, unit) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None                             # the schema check reports the type
    if isinstance(v, float) and not math.isfinite(v):
        return f"{where}: [{table}] {key} must be a finite number, got {v}"
    if v < lo or (hi is not None and v > hi):
        span = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        return f"{where}: [{table}] {key} must be {span} {unit}, got {v}"
    return None


def host_port_error(value: str, lowest: int = 1) -> str | None:
    """Why `value` is not HOST:PORT (an IPv6 address in brackets, `[::1]:2775`), or None."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not lowest <= int(port) <= 65535:
        return f"must be HOST:PORT with a port of {lowest}-65535, got {value!r}"
    bracketed = host.startswith("[")
    if bracketed != host.endswith("]") or (":" in host and not bracketed):
        # `[::1` read as host "[:" and port 1: every bind failed on a name nobody has, said at each retry
        return f"must be HOST:PORT with an IPv6 address in brackets ([::1]:2775), got {value!r}"
    if bracketed:
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"must be HOST:PORT: {host[1:-1]!r} in brackets is not an IPv6 address, got {value!r}"
    return None


def check(p, text: str, raw: dict) -> list[str]:
    from ..config import key_line
    errors = []
    srv, up = raw.get("server", {}), raw.get("upstream", {})
    for key, (lo, hi, unit) in SERVER_RANGES.items():
        if key in srv:
            e = _range(f"{p}:{key_line(text, 'server', key)}:1", "server", key, srv[key], lo, hi, unit)
            if e:
                errors.append(e)
    if isinstance(srv.get("tls_listen"), str) and srv["tls_listen"]:
        bad = host_port_error(srv["tls_listen"], lowest=0)        # port 0: the system picks one (as listen)
        if bad:
            errors.append(f"{p}:{key_line(text, 'server', 'tls_listen')}:1: [server] tls_listen {bad}")
    if srv.get("bind_backoff_max", 30.0) < srv.get("bind_backoff", 0.5):
        errors.append(f"{p}:{key_line(text, 'server', 'bind_backoff_max')}:1: [server] bind_backoff_max is below "
                      "bind_backoff")
    for key, (lo, hi, unit) in UPSTREAM_RANGES.items():
        if key in up:
            e = _range(f"{p}:{key_line(text, 'upstream', key)}:1", "upstream", key, up[key], lo, hi, unit)
            if e:
                errors.append(e)
    at = f"{p}:{key_line(text, 'upstream', 'smsc')}:1"
    for i, e in enumerate(up.get("smsc", []) if isinstance(up.get("smsc"), list) else ()):
        name = f"[upstream] smsc #{i + 1}"
        if isinstance(e, dict):
            for k, v in e.items():
                types = LINK_KEYS.get(k)
                if types is None:
                    errors.append(f"{at}: {name}: unknown key {k!r} (one of {', '.join(LINK_KEYS)})")
                elif not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
                    errors.append(f"{at}: {name}: {k} has the wrong type: {v!r}")
                elif k in UPSTREAM_RANGES:
                    lo, hi, unit = UPSTREAM_RANGES[k]
                    err = _range(at, "upstream", f"smsc #{i + 1} {k}", v, lo, hi, unit)
                    if err:
                        errors.append(err)
            addr = e.get("address")
            if not isinstance(addr, str):
                errors.append(f"{at}: {name}: a table needs address = \"host:port\"")
                continue
        elif isinstance(e, str):
            addr = e
        else:
            errors.append(f"{at}: {name}: a \"host:port\" string or a table, got {e!r}")
            continue
        bad = host_port_error(addr)
        if bad:
            errors.append(f"{at}: {name} address {bad}")
    for key, most in (("system_id", MAX_SYSTEM_ID), ("password", MAX_PASSWORD)):
        v = up.get(key)
        bad = octets_problem(v, most) if isinstance(v, str) else None
        if bad:
            errors.append(f"{p}:{key_line(text, 'upstream', key)}:1: [upstream] {key} {bad}")
    drop = raw.get("drop", {})
    syms = drop.get("silent_symbols", [])
    if isinstance(syms, list) and not all(isinstance(x, str) for x in syms):
        errors.append(f"{p}:{key_line(text, 'drop', 'silent_symbols')}:1: [drop] silent_symbols must be a list of "
                      "symbol names (strings)")
    long = raw.get("shortcode", {}).get("long_replies", "parts")
    if isinstance(long, str) and long not in LONG_REPLIES:
        errors.append(f"{p}:{key_line(text, 'shortcode', 'long_replies')}:1: [shortcode] long_replies must be "
                      "\"parts\" (concatenated SMS) or \"payload\" (message_payload, for the SMSC to split), "
                      f"got {long!r}")
    replies = raw.get("shortcode", {}).get("replies", {})
    if isinstance(replies, dict):
        from .accounts import DEFAULT_REPLIES, DNC_REPLIES, REPLY_CHANNEL
        for k, v in replies.items():
            if k not in DEFAULT_REPLIES:
                where = " (it belongs in [shortcode])" if k in ("long_replies", "replies_per_hour", "confirm") else \
                    f" (one of {', '.join(DEFAULT_REPLIES)})"
                errors.append(f"{p}:{key_line(text, 'shortcode.replies', k)}:1: [shortcode.replies] unknown key {k!r}"
                              + where)
            elif not isinstance(v, str):
                errors.append(f"{p}:{key_line(text, 'shortcode.replies', k)}:1: [shortcode.replies] {k} must be a "
                              f"string, got {v!r}")
            elif "{channel}" in v and k not in DNC_REPLIES:
                # only a DNC command names a channel: the subscriber would get the placeholder itself
                errors.append(f"{p}:{key_line(text, 'shortcode.replies', k)}:1: [shortcode.replies] {k}: {{channel}} "
                              f"is replaced in {', '.join(DNC_REPLIES)} only")
            elif len(cuts(*encode_text(v.replace("{channel}", max(REPLY_CHANNEL.values(), key=len))))) > MAX_PARTS:
                errors.append(f"{p}:{key_line(text, 'shortcode.replies', k)}:1: [shortcode.replies] {k} is over "
                              f"{MAX_PARTS} SMS (the most one concatenated message has)")
    return errors
