"""The [[account]] tables of smpp.toml -> Account objects, every error at its line (moved from accounts.py,
which keeps the settings and imports this in load_smpp_settings: `python -m engine.smpp_proxy.accounts` runs it
as __main__, and an import of this at its top or bottom would be circular)."""
from __future__ import annotations

import math
import re
from pathlib import Path

from .accounts import BIND_TYPES, Account, SmppConfigError
from .codec.text import READINGS
from .config_checks import octets_problem
from .tls_identity import TlsKeyError, account_tls

# [[account]] keys and the types a value may have (a typo such as `throughtput` is an error,
# not a silently ignored limit)
_ACCOUNT_KEYS = {"system_id": (str,), "password_hash": (str,), "bind_types": (list,), "max_binds": (int,),
                 "allowed_networks": (list,), "throughput": (int, float), "window": (int,),
                 "mo_prefixes": (list,), "text_reading": (str,), "receipt_after_resp": (bool,),
                 "tls_client_subject": (str,), "tls_client_sha256": (str,)}
_ACCOUNT_HEADER = re.compile(r"^\s*\[\[\s*account\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[")


def _account_lines(text: str) -> list[tuple[int, dict]]:
    """(header line, {key: line}) of each [[account]] table, in file order."""
    out, current = [], None
    for n, line in enumerate(text.splitlines(), 1):
        if _ACCOUNT_HEADER.match(line):
            current = {}
            out.append((n, current))
        elif _ANY_HEADER.match(line):
            current = None
        elif current is not None:
            m = re.match(r"^\s*[\"']?([A-Za-z0-9_-]+)[\"']?\s*=", line)
            if m:
                current.setdefault(m.group(1), n)
    return out


def parse_accounts(p: Path, raw: dict, text: str) -> dict:
    """The [[account]] tables of smpp.toml -> {system_id: Account}; the first error is an
    SmppConfigError `path:line:1: message`, so a reload that refuses a file says where."""
    import difflib
    tables = raw.get("account", [])
    if not isinstance(tables, list):
        raise SmppConfigError(f"{p}: account must be an array of tables [[account]]")
    lines = _account_lines(text)
    accounts: dict = {}
    for i, a in enumerate(tables):
        head, keys = lines[i] if i < len(lines) else (1, {})

        def err(msg, key=None):
            return SmppConfigError(f"{p}:{keys.get(key, head) if key else head}:1: account #{i + 1}"
                                   f"{' ' + repr(a.get('system_id')) if isinstance(a.get('system_id'), str) else ''}: {msg}")
        for key, value in a.items():
            types = _ACCOUNT_KEYS.get(key)
            if types is None:
                close = difflib.get_close_matches(key, list(_ACCOUNT_KEYS), n=1)
                raise err(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""), key)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise err(f"{key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}", key)
            if isinstance(value, float) and not math.isfinite(value):   # nan passes `< least` below
                raise err(f"{key} must be a finite number, got {value!r}", key)
        for key in ("system_id", "password_hash"):
            if key not in a:
                raise err(f"{key} is required")
        sid = a["system_id"]
        if not 1 <= len(sid) <= 15:          # SMPP 3.4 §5.2.1: system_id is C-Octet String of at most 16
            raise err("system_id must be 1-15 characters", "system_id")
        if octets_problem(sid, 15):          # a bind carries octets (read as Latin-1): "Đại" could never bind
            raise err(f"system_id {octets_problem(sid, 15)}", "system_id")
        if sid in accounts:
            raise err(f"system_id {sid!r} defined twice (first at {accounts[sid].origin})", "system_id")
        if a["password_hash"].split("$")[0] != "pbkdf2_sha256" or len(a["password_hash"].split("$")) != 4:
            raise err("password_hash must be pbkdf2_sha256$ITERATIONS$SALT$HASH "
                      "(python -m engine.smpp_proxy.accounts PASSWORD)", "password_hash")
        srv = raw.get("server") if isinstance(raw.get("server"), dict) else {}
        try:                                    # (the same check for --esme-accounts-file: credentials.py)
            subject, sha256 = account_tls(a, bool(srv.get("tls_listen") and srv.get("tls_client_ca")))
        except TlsKeyError as e:
            raise err(str(e), e.key) from None
        try:
            acc = Account(system_id=sid, password_hash=a["password_hash"],
                          bind_types=tuple(a.get("bind_types", BIND_TYPES)), max_binds=int(a.get("max_binds", 8)),
                          allowed_networks=tuple(a.get("allowed_networks", ("0.0.0.0/0", "::/0"))),
                          throughput=float(a.get("throughput", 1000)), window=int(a.get("window", 100)),
                          mo_prefixes=tuple(a.get("mo_prefixes", ())),
                          text_reading=str(a.get("text_reading", "auto")),
                          receipt_after_resp=a.get("receipt_after_resp", False), origin=f"{p}:{head}",
                          tls_client_subject=subject, tls_client_sha256=sha256)
        except (ValueError, TypeError) as e:        # a network that does not parse
            raise err(str(e), "allowed_networks") from None
        if acc.text_reading not in READINGS:
            raise err(f"text_reading must be one of {', '.join(READINGS)}", "text_reading")
        bad = set(acc.bind_types) - set(BIND_TYPES)
        if bad:
            raise err(f"unknown bind type {sorted(bad)[0]!r}", "bind_types")
        for key, least in (("max_binds", 0), ("window", 1), ("throughput", 1e-9)):   # max_binds 0: disabled
            if getattr(acc, key) < least:
                raise err(f"{key} must be {'at least ' + str(least) if least >= 1 or least == 0 else 'above 0'}", key)
        accounts[sid] = acc
    return accounts
