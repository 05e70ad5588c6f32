"""Secrets for `telfilter serve` kept off argv (where every local user reads them in ps and
/proc/PID/cmdline): the SMSC password and ESME accounts from a file or an environment
variable. Given on argv anyway they still work, with a warning. Errors name file:line and
never echo a password."""
from __future__ import annotations

import logging
import os
import re
import stat

log = logging.getLogger("telfilter")

SMSC_PASSWORD_ENV = "TELFILTER_SMSC_PASSWORD"
ESME_ACCOUNTS_ENV = "TELFILTER_ESME_ACCOUNTS"
STATE_ENV = "TELFILTER_STATE"
_ARGV_SECRET = ("%s on the command line is readable by every local user (ps, /proc/PID/cmdline): "
                "use %s or the environment variable %s")
# where an accounts file line's tls_client_* keys begin: after whitespace, so no SMPP password (8 characters at
# most, SMPP 3.4 §5.2.3) can hold one
_TLS_KEY = re.compile(r"\s+(tls_client_subject|tls_client_sha256)\s*=\s*")
_FILE_KEYS = ("tls_client_subject", "tls_client_sha256")
# what else reads as a key: NAME= after whitespace in the password; in a value (a subject holds `, O=Acme`),
# a tls_ one only
_OTHER_KEY = re.compile(r"\s([A-Za-z_][\w-]*)\s*=")
_OTHER_TLS_KEY = re.compile(r"\s(tls_[\w-]*)\s*=", re.IGNORECASE)


def _say(said: str, warnings: list | None) -> None:
    """A warning: added to `warnings` (`config check` counts them) when given, else logged."""
    if warnings is None:
        log.warning("%s", said)
    else:
        warnings.append(said)


def open_to_others(path, mode: int) -> str | None:
    """What to say of a secret (a secrets file, the TLS listener's key) whose `mode` lets others than its owner in:
    a regular file's only (a device's or a pipe's mode says nothing of who reads what is written into them)."""
    if stat.S_ISREG(mode) and mode & 0o077:
        return f"{path} can be read by other users (mode {mode & 0o777:o}): chmod 600 it"
    return None


def _secret_file(flag: str, path, errors: list, warnings: list | None = None) -> list[tuple[int, str]] | None:
    """(line number, line) of a secrets file, without comments and blank lines; a regular file others
    can read is worth a warning (the point of the file is that they cannot: logged, or added to `warnings`,
    which `config check` counts as it counts its other warnings). Not a device or a pipe
    (/dev/null, /dev/stdin, a FIFO, a shell's <(...)): their mode says nothing of who can read what is
    written into them, and chmod 600 would be wrong advice. A file that cannot be read is said naming `flag`, the
    option that named it (`--smsc-password-file /x: Is a directory`: the path alone was said)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())                     # the file read, not what the name points to later
            data = f.read()
    except OSError as e:
        errors.append(f"{flag} {path}: {e.strerror or e}")
        return None
    try:
        text = data.decode("utf-8-sig")                   # -sig: a BOM (Notepad's) is not part of the first line
    except UnicodeDecodeError as e:                       # its line, never its bytes (a password's)
        line = data.count(b"\n", 0, e.start) + 1
        errors.append(f"{path}:{line}: not UTF-8 text")
        return None
    shared = open_to_others(path, st.st_mode)
    if shared:
        _say(shared, warnings)
    return [(n, l.rstrip("\r\n")) for n, l in enumerate(text.splitlines(True), 1)
            if l.strip() and not l.lstrip().startswith("#")]


def smsc_password(args, errors: list, warnings: list | None = None) -> str | None:
    """The password we bind upstream with: --smsc-password (warned: argv is public), else the
    first line of --smsc-password-file, else $TELFILTER_SMSC_PASSWORD, else smpp.toml's. One over
    SMPP 3.4's 8 characters is an error (the SMSC would refuse every bind)."""
    from .smpp_proxy.config_checks import MAX_PASSWORD, octets_problem
    if args.smsc_password:
        log.warning(_ARGV_SECRET, "--smsc-password", "--smsc-password-file", SMSC_PASSWORD_ENV)
        pw, where = args.smsc_password, "--smsc-password"
    elif getattr(args, "smsc_password_file", None):
        lines = _secret_file("--smsc-password-file", args.smsc_password_file, errors, warnings)
        if lines is None:
            return None
        if not lines:
            errors.append(f"{args.smsc_password_file}: empty (expected the password on its first line)")
            return None
        pw, where = lines[0][1], f"{args.smsc_password_file}:{lines[0][0]}"
    else:
        pw, where = os.environ.get(SMSC_PASSWORD_ENV) or None, f"${SMSC_PASSWORD_ENV}"
    bad = octets_problem(pw, MAX_PASSWORD) if pw is not None else None
    if bad:
        errors.append(f"{where}: the SMSC password {bad}")
        return None
    return pw


def state_url(args, warnings: list | None = None) -> str | None:
    """The `--state` URL, else $TELFILTER_STATE (a Redis password off argv: argv was the only way to give one).
    A `--state` holding a password (the data nodes' or the sentinels') is warned about (as `_say`), never shown."""
    from .state.url import redacted
    url = getattr(args, "state", None)
    if url:
        # (a pool's worker runs the supervisor's command line: the supervisor said it)
        if redacted(url) != url and "TELFILTER_WORKERS" not in os.environ:
            _say("--state holds a password: on the command line it is readable by every local user "
                 f"(ps, /proc/PID/cmdline): give the URL in the environment variable {STATE_ENV}", warnings)
        return url
    return os.environ.get(STATE_ENV) or None


def _file_line(line: str) -> tuple[str, dict]:
    """`esme1:pw tls_client_subject=CN=e1,O=Acme tls_client_sha256=AB:..` -> ("esme1:pw", {key: value});
    a value runs to the next key (a subject may hold spaces). ValueError for a key given twice, and for an
    unknown one: `NAME=` after whitespace in the password (`esme5:pw bogus=1`, `e:p x=1` used to be read as the
    password "pw bogus=1" or refused as too long), or a `tls_…=` one in a value (a misspelt second key)."""
    parts = _TLS_KEY.split(line)
    m = _OTHER_KEY.search(parts[0].partition(":")[2]) or next(filter(None, map(_OTHER_TLS_KEY.search, parts[2::2])), None)
    if m:
        import difflib
        close = difflib.get_close_matches(m.group(1), _FILE_KEYS, n=1)
        raise ValueError(f"unknown key {m.group(1)!r}" + (f" (did you mean {close[0]!r}?)" if close else
                         f" (after the password: {' and/or '.join(_FILE_KEYS)})"))
    values: dict = {}
    for key, value in zip(parts[1::2], parts[2::2]):
        if key in values:
            raise ValueError(f"{key} given twice")
        values[key] = value.strip()
    return parts[0], values


def esme_accounts(args, errors: list, warn: bool = True, mutual_tls: bool | None = None,
                  warnings: list | None = None) -> list:
    """Accounts from --esme-account (warned), --esme-accounts-file (one SYSTEM_ID:PASSWORD a
    line, then optionally tls_client_subject=... and/or tls_client_sha256=... as smpp.toml's
    [[account]] keys; '#' comments; errors as file:line, never echoing the password) and
    $TELFILTER_ESME_ACCOUNTS (entries separated by whitespace). Each Account's `origin` says
    which. `ctl reload accounts` calls this again: the file is re-read, argv and the
    environment are what the process started with (warned about once, at start).
    `mutual_tls`: smpp.toml has tls_listen and tls_client_ca (None: unknown, not checked); `warnings`: where
    `config check` counts the file's warning (else it is logged)."""
    from .smpp_proxy.accounts import account_from_arg
    from .smpp_proxy.config_checks import MAX_PASSWORD
    from .smpp_proxy.tls_identity import account_tls
    out = []
    entries = [(None, a) for a in args.esme_account]
    if args.esme_account and warn:
        log.warning(_ARGV_SECRET, "--esme-account", "--esme-accounts-file", ESME_ACCOUNTS_ENV)
    path = getattr(args, "esme_accounts_file", None)
    if path:
        entries += [(f"{path}:{n}", l.strip()) for n, l in (_secret_file("--esme-accounts-file", path, errors, warnings) or [])]
    entries += [(f"${ESME_ACCOUNTS_ENV} entry {i}", a)
                for i, a in enumerate(os.environ.get(ESME_ACCOUNTS_ENV, "").split(), 1)]
    in_file: dict = {}
    for where, a in entries:
        tls = {}
        if where is not None and where.startswith(f"{path}:"):
            try:
                a, tls = _file_line(a)
                subject, sha256 = account_tls(tls, mutual_tls)
            except ValueError as e:             # (TlsKeyError is one): as smpp.toml's [[account]] says it
                sid = a.partition(":")[0] if ":" in a else ""       # (no ':': what is there may be a password)
                errors.append(f"{where}: account {sid!r}: {e}" if sid else f"{where}: {e}")
                continue
        try:
            acc = account_from_arg(a, where or "--esme-account")
            if tls:
                acc.tls_client_subject, acc.tls_client_sha256 = subject, sha256
            if where is not None and where.startswith(f"{path}:"):
                if acc.system_id in in_file:    # the second line silently won: an error, as a [[account]] twice is
                    errors.append(f"{where}: account {acc.system_id!r} given twice (first at {in_file[acc.system_id]})")
                    continue
                in_file[acc.system_id] = where
            out.append(acc)
        except Exception as e:      # SmppConfigError: a malformed entry
            if where is None:
                errors.append(str(e))
            else:
                sid = a.partition(":")[0] if ":" in a else ""
                errors.append(f"{where}: expected SYSTEM_ID:PASSWORD with a 1-15 character system_id and a password "
                              f"of at most {MAX_PASSWORD} characters" + (f" (got system_id {sid!r})" if sid else ""))
    return out


def merge_accounts(accounts: dict, extra: list, warnings: list | None = None) -> None:
    """esme_accounts()' `extra` into `accounts` (smpp.toml's [[account]] tables, by system_id), at start and at
    `ctl reload accounts`: the command line, the file and the environment win, as they always have, but an
    account they replace is said, naming both places (the table's limits, networks and password stop applying:
    a bind from a network it did not allow was taken without a word). Said: logged, or added to `warnings`
    (`config check`'s)."""
    for acc in extra:
        old = accounts.get(acc.system_id)
        if old is not None:
            _say(f"{acc.origin}: account {acc.system_id!r} replaces the one defined at {old.origin}: its limits "
                 "(allowed_networks, throughput, bind types, max_binds, window) and password are not in force",
                 warnings)
        accounts[acc.system_id] = acc


# serve's start warns (and `config check` counts it, so --strict fails on it) when no source gives an account
NO_ACCOUNTS = (f"no ESME accounts (smpp.toml [[account]], --esme-accounts-file, --esme-account, ${ESME_ACCOUNTS_ENV}): "
               "every bind will be refused until `telfilter ctl reload accounts` brings some")
