"""ESME accounts and SMPP proxy settings (config/smpp.toml).

Passwords are stored hashed: `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`; make one
with `python -m engine.smpp_proxy.accounts PASSWORD`.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .codec.text import READINGS
from .tls import SERVER_KEYS as TLS_SERVER_KEYS, link_settings, server_settings

ITERATIONS = 20_000
BIND_TYPES = ("transmitter", "receiver", "transceiver")


def hash_password(pw: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or os.urandom(8)
    h = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${h.hex()}"


def verify_password(pw: str, stored: str) -> bool:
    try:
        algo, it, salt, h = stored.split("$")
        if algo != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", pw.encode("utf-8", "surrogateescape"), bytes.fromhex(salt), int(it))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), h)


@dataclass
class Account:
    system_id: str
    password_hash: str
    bind_types: tuple = BIND_TYPES
    max_binds: int = 8
    allowed_networks: tuple = ("0.0.0.0/0", "::/0")
    throughput: float = 1000.0          # submit_sm per second (token bucket)
    window: int = 100                   # outstanding deliver_sm towards this ESME
    mo_prefixes: tuple = ()             # MO whose destination_addr starts with one of these goes here
    # how this ESME's data_coding 0 / 1 bytes are read (codec.text.READINGS): "auto" recognises GSM
    # 03.38 escape sequences under data_coding 1 (node-smpp's default), else ASCII / Latin-1
    text_reading: str = "auto"
    # a receipt the SMSC sends right after its submit_sm_resp waits RECEIPT_AFTER_RESP (routing.py) before it goes
    # to another bind of this account: for an ESME that reads its transmitter and receiver binds apart (Kannel
    # 1.4.5) and throws away a receipt read before its resp. Off by default: such a receipt's deliver_sm stays
    # unanswered meanwhile, so the SMSC link's flow of them is at most its window per 0.25 s
    receipt_after_resp: bool = False
    # the client certificate this account binds with, over the TLS listener only (tls_identity.py): its whole
    # subject ("CN=esme1,O=Acme") and/or its SHA-256 (64 lowercase hex digits); "": any the CA issued
    tls_client_subject: str = ""
    tls_client_sha256: str = ""
    origin: str = ""                    # where it is defined: smpp.toml:LINE, --esme-account, FILE:LINE, $ENV
    _nets: list = field(default_factory=list, repr=False)
    _verified: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._nets = [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]

    def network_allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in n for n in self._nets if n.version == ip.version)

    def known_password(self, pw: str) -> bool:
        """True when `pw` was verified before. Binds repeat, so only the first costs a PBKDF2;
        the cache holds successful checks only (keyed by a fast digest, never the password),
        so it is bounded by the passwords that are right, not by what attackers try."""
        return _digest(pw) in self._verified

    def remember(self, pw: str) -> None:
        self._verified[_digest(pw)] = True

    def check_password(self, pw: str) -> bool:
        if self.known_password(pw):
            return True
        ok = verify_password(pw, self.password_hash)
        if ok:
            self.remember(pw)
        return ok


def _digest(pw: str) -> str:
    return hashlib.sha256(pw.encode("utf-8", "surrogateescape")).hexdigest()


# verified against when the system_id is unknown, so that an unknown account costs the same
# time as a wrong password (no account enumeration by timing)
DUMMY_HASH = hash_password("\x00unknown-account", salt=b"telfilter")


# An account's throughput is counted in SMS segments, as carriers bill and provision it: a message_payload of
# 60 KB is ~450 SMS, to the SMSC and to the CPU that judges it (~0.1 us a character), not one. A PDU up to
# ONE_SEGMENT_PDU bytes (any submit_sm carrying one SMS: 140 octets of user data and its addresses) costs
# one; a longer one one more for each SEGMENT octets beyond; a submit_multi that many times its recipients
# (each is judged). So what an ESME makes the proxy judge per second is bounded by its throughput. The
# first token is taken when the PDU arrives, the rest (TokenBucket.charge) once it is to be judged or held:
# a PDU refused unjudged (too long, malformed, a distribution list) costs one, however long.
ONE_SEGMENT_PDU = 400
SEGMENT = 134                       # octets of user data a segment of a concatenated SMS carries (140 - UDH)


def message_cost(pdu) -> int:
    n = len(pdu.raw)
    segments = 1 if n <= ONE_SEGMENT_PDU else 1 + -(-(n - ONE_SEGMENT_PDU) // SEGMENT)
    return segments * max(1, len(getattr(pdu, "dest_addresses", None) or ()))


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None):
        self.rate, self.burst = rate, burst or max(1.0, rate)
        self.tokens, self.t = self.burst, time.monotonic()

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def charge(self, n: int) -> None:
        """n more tokens for a message let through by `take` (its other SMS segments): the bucket may go below
        zero, so a long message is paid for by the ones after it."""
        self.tokens -= n


# `{channel}` in a DNC reply: the channel its hit names (rules/shortcode.py detail_channel), in these words
REPLY_CHANNEL = {"S": "tin nhan", "V": "cuoc goi", "SV": "tin nhan va cuoc goi"}
DNC_REPLIES = ("DNC_REGISTERED", "DNC_CANCELLED", "DNC_NOT_REGISTERED")
DEFAULT_REPLIES = {
    "DNC_REGISTERED": "Ban da dang ky thanh cong danh sach khong nhan quang cao (DNC) cho {channel}.",
    "DNC_CANCELLED": "Ban da huy dang ky danh sach khong nhan quang cao (DNC) cho {channel}.",
    # HUY DNC from a number not on the list for that channel: nothing changed, and the subscriber is told so
    "DNC_NOT_REGISTERED": "So cua ban khong co trong danh sach khong nhan quang cao (DNC) cho {channel}, "
                          "khong co thay doi.",
    "SPAM_REPORTED": "Cam on ban da phan anh tin nhan/cuoc goi rac.",
    "AD_COPY_RECEIVED": "Da nhan ban sao tin quang cao.",
    "SHORTCODE_SYNTAX_ERROR": "Sai cu phap. Soan DK DNC, HUY DNC, S <so> <noi dung> hoac V <so> <noi dung> gui 5656.",
}


@dataclass
class SmppSettings:
    listen: str = "0.0.0.0:2775"
    max_pdu: int = 69632        # 64 KB + 4 KB: a full message_payload (65,535 octets) and the PDU's other fields
    idle_timeout: float = 300.0
    enquire_link_interval: float = 30.0
    concat_timeout: float = 30.0
    # a message judged before all its parts came is remembered this long (at most max_pending_concat of them), so
    # a part that comes later is judged on the whole text, not its fragment: handsets keep a partial message far
    # longer than concat_timeout
    concat_memory: float = 86400.0
    smsc: list = field(default_factory=list)
    smsc_system_id: str = "telfilter"
    smsc_password: str = "tfsecret"          # SMPP 3.4 §5.2.2: at most 8 characters
    smsc_window: int = 200
    smsc_response_timeout: float = 10.0
    smsc_text_reading: str = "auto"                # how MO data_coding 0 / 1 bytes from the SMSC are read
    smsc_links: dict = field(default_factory=dict)    # "host:port" -> {"response_timeout": s, "window": n}
    # the SMSC's message_id of each forwarded message in the verdict log, an `sms_id` line at its resp (off: the log
    # holds one line a judged message, as its readers count them); `telfilter verdicts` joins the two
    smsc_log_message_ids: bool = False
    smsc_stall_after: float = 2.0       # a link owing answers that answered none this long (or whose last
                                        # request timed out) takes no new submits (ESME_RTHROTTLED at once)
    max_connections: int = 1000         # total ESME connections (clamped below the fd limit at start)
    max_connections_per_source: int = 64
    bind_timeout: float = 10.0          # seconds an ESME connection may stay unbound
    bind_failures_free: int = 3         # failed binds per source answered without delay
    bind_backoff: float = 0.5           # then one check per this, doubling per failure ...
    bind_backoff_max: float = 30.0      # ... up to this
    distribution_lists: str = "refuse"  # submit_multi to a distribution list: "refuse" or "judge"
    # a cancel_sm this process cannot tie to a message the account sent (no message_id: every message from a
    # source to a destination, SMPP 3.4 §4.9; or an id it did not forward or has forgotten): "refuse"
    # (ESME_RCANCELFAIL / ESME_RINVMSGID: the SMSC sees one system_id, so it could cancel another account's
    # messages) or "relay"
    cancel_unverified: str = "refuse"
    # an ad scheduled ahead whose recipient registers DK DNC (no consent) before its delivery: cancelled at the
    # SMSC with a cancel_sm of our own (scheduled.py, dnc_cancel.py)
    cancel_scheduled_on_dnc: bool = True
    max_pending_concat: int = 20000     # concatenated messages waiting for parts (oldest judged first)
    max_pending_concat_bytes: int = 64 << 20    # ... and the bytes their parts hold in all (the oldest judged first)
    max_message_chars: int = 65536      # a message's text (all its parts); longer: ESME_RINVMSGLEN
    # a schedule_delivery_time further ahead: ESME_RINVSCHED (an advertiser cap counted at delivery keeps its
    # stamp, and its row, until then)
    max_schedule_days: float = 30.0
    receipt_wait: float = 5.0           # a receipt for a message_id not known yet waits this long for its resp
    max_early_receipts: int = 10000
    # receipts held for accounts with no free receiver bind (all proxies' accounts together); at the cap a
    # new one is not acknowledged (ESME_RX_T_APPN: the SMSC keeps it and delivers it again later)
    max_held_receipts: int = 200000
    # ... of which one account may hold at most this many (0: half of max_held_receipts; all with one account),
    # so an account that never binds a receiver (transmitter only, asking for receipts) cannot take the others' room
    max_held_per_account: int = 0
    max_held_days: float = 3.0          # a receipt held longer is let go (logged, counted: the SMSC was answered)
    reconnect_min: float = 0.2
    reconnect_max: float = 30.0
    tag_tlv: int | None = 0x1400
    tag_prefix: str = ""
    silent_symbols: tuple = ()
    rejected_receipt: bool = True
    confirm_shortcode: bool = True
    shortcode_replies_per_hour: int = 20    # 5656 replies one subscriber gets an hour at most (reply_cap.py; 0: no cap)
    shortcode_replies: dict = field(default_factory=lambda: dict(DEFAULT_REPLIES))
    # a reply over one SMS (shortcode_replies.py): "parts", concatenated SMS with a UDH, as any SMSC takes them; or
    # "payload", whole in message_payload for the SMSC to split (optional in an SMSC: as parts if it refuses the TLV)
    shortcode_long_replies: str = "parts"
    accounts: dict = field(default_factory=dict)
    # SMPP over TLS (tls.py): a second listener (listen = "" for TLS only); paths resolved against the config dir
    tls_listen: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""             # set: a client certificate issued by this CA is required (mutual TLS)
    tls_client_crl: str = ""            # set: ... and not revoked by its CRL in this file (tls_crl.py)
    tls_handshake_timeout: float = 10.0
    # handshakes begun a second (tls_rate.py): the listener's (200 x ~0.45 ms: under a tenth of the loop), and each
    # source address's, with a burst for an ESME binding all its connections at once
    tls_handshakes_per_second: float = 200.0
    tls_handshakes_per_source: float = 2.0
    tls_handshakes_per_source_burst: int = 16
    # a bind's PDUs that are not messages (enquire_link, query_sm, cancel_sm, one out of turn, a refused one): this
    # many a second with this burst, the rest answered ESME_RTHROTTLED; the bind closed after this many refused
    # since its bucket was last full (0: never). A sane ESME sends an enquire_link every 30-60 s.
    other_requests_per_second: float = 50.0
    other_requests_burst: int = 500
    other_requests_refused_close: int = 2000
    warnings: list = field(default_factory=list)   # what loads but should be seen to (an expired certificate)


DEFAULT_LIMITS = dict(bind_types=BIND_TYPES, max_binds=16, throughput=100_000.0, window=500)


class SmppConfigError(Exception):
    pass


_SERVER_KEYS = (("max_pdu", int), ("idle_timeout", float), ("enquire_link_interval", float),
                ("concat_timeout", float), ("concat_memory", float), ("max_connections", int), ("max_connections_per_source", int),
                ("bind_timeout", float), ("bind_failures_free", int), ("bind_backoff", float),
                ("bind_backoff_max", float), ("max_pending_concat", int), ("max_pending_concat_bytes", int),
                ("max_message_chars", int), ("max_schedule_days", float), ("receipt_wait", float),
                ("max_early_receipts", int), ("max_held_receipts", int),
                ("max_held_per_account", int), ("max_held_days", float), ("tls_handshake_timeout", float),
                ("tls_handshakes_per_second", float), ("tls_handshakes_per_source", float),
                ("tls_handshakes_per_source_burst", int), ("other_requests_per_second", float),
                ("other_requests_burst", int), ("other_requests_refused_close", int))


def _schema() -> dict:
    """smpp.toml's tables and keys with the types a value may have ([[account]]: parse_accounts)."""
    num = (int, float)
    return {
        "server": {"listen": (str,), **TLS_SERVER_KEYS, **{name: (int,) if conv is int else num for name, conv in _SERVER_KEYS}},
        "upstream": {"smsc": (list,), "system_id": (str,), "password": (str,), "window": (int,),
                     "response_timeout": num, "stall_after": num, "text_reading": (str,), "log_message_ids": (bool,)},
        "tagging": {"tlv_tag": (int, bool), "text_prefix": (str,)},
        "submit_multi": {"distribution_lists": (str,)},
        "cancel_sm": {"unverified": (str,), "scheduled_on_dnc": (bool,)},
        "drop": {"silent_symbols": (list,), "rejected_receipt": (bool,)},
        "shortcode": {"confirm": (bool,), "replies": (dict,), "replies_per_hour": (int,), "long_replies": (str,)},
    }


def load_smpp_settings(config_dir: Path) -> SmppSettings:
    from .account_file import parse_accounts       # ([[account]] tables; it imports Account: not at the top)
    from .tls import check_tls

    p = Path(config_dir) / "smpp.toml"
    s = SmppSettings()
    if not p.exists():
        return s
    try:
        text = p.read_text(encoding="utf-8-sig")     # -sig: a BOM (Notepad's UTF-8) is no TOML statement
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SmppConfigError(f"{p}: {e}") from None
    from ..config import check_schema, key_line, well_typed
    from .config_checks import check
    tables = {k: v for k, v in raw.items() if k != "account"}
    errors = check_schema(p, text, tables, _schema())
    # values of the right type that cannot work (config_checks.py), checked beside the type errors: all at once
    typed = well_typed(tables, _schema())
    if "account" in raw:
        typed["account"] = raw["account"]
    errors += check(p, text, typed)
    links = {e["address"]: e for e in typed.get("upstream", {}).get("smsc", [])
             if isinstance(e, dict) and isinstance(e.get("address"), str)}
    tls_errors, s.warnings = check_tls(p, text, Path(config_dir), typed.get("server", {}), links)
    errors += tls_errors
    if errors:                       # unknown keys, wrong types and bad values, every one with its line
        raise SmppConfigError("\n".join(errors))
    srv, up, tag, drop, sc = (raw.get(k, {}) for k in ("server", "upstream", "tagging", "drop", "shortcode"))
    s.listen = srv.get("listen", s.listen)
    host, sep, port = s.listen.rpartition(":")
    if not (s.listen == "" and srv.get("tls_listen")) and (not sep or not port.isdigit() or int(port) > 65535):
        raise SmppConfigError(f"{p}:{key_line(text, 'server', 'listen')}:1: [server] listen must be HOST:PORT "
                              f"(or \"\" with tls_listen: TLS only), not {s.listen!r}")
    for name, conv in _SERVER_KEYS:            # [server] numbers: the key is the setting's name
        setattr(s, name, conv(srv.get(name, getattr(s, name))))
    s.distribution_lists = str(raw.get("submit_multi", {}).get("distribution_lists", s.distribution_lists))
    if s.distribution_lists not in ("refuse", "judge"):
        raise SmppConfigError(f"{p}:{key_line(text, 'submit_multi', 'distribution_lists')}:1: "
                              "[submit_multi] distribution_lists must be \"refuse\" or \"judge\"")
    s.cancel_unverified = str(raw.get("cancel_sm", {}).get("unverified", s.cancel_unverified))
    if s.cancel_unverified not in ("refuse", "relay"):
        raise SmppConfigError(f"{p}:{key_line(text, 'cancel_sm', 'unverified')}:1: "
                              "[cancel_sm] unverified must be \"refuse\" or \"relay\"")
    s.smsc_log_message_ids = bool(up.get("log_message_ids", s.smsc_log_message_ids))
    s.cancel_scheduled_on_dnc = bool(raw.get("cancel_sm", {}).get("scheduled_on_dnc", s.cancel_scheduled_on_dnc))
    s.smsc = []
    for i, e in enumerate(up.get("smsc", [])):
        if isinstance(e, dict):       # {address = "host:port", response_timeout = 10, window = 200}
            if not isinstance(e.get("address"), str):
                raise SmppConfigError(f"{p}: upstream.smsc #{i + 1}: a table needs address = \"host:port\"")
            s.smsc.append(e["address"])
            s.smsc_links[e["address"]] = {k: float(e[k]) if k == "response_timeout" else int(e[k])
                                          for k in ("response_timeout", "window") if k in e}
            if "id_space" in e:       # links to different SMSCs, whose message_ids may collide (msgids.py)
                if not isinstance(e["id_space"], str):
                    raise SmppConfigError(f"{p}: upstream.smsc #{i + 1}: id_space must be a string")
                s.smsc_links[e["address"]]["id_space"] = e["id_space"]
            s.smsc_links[e["address"]].update(link_settings(config_dir, e))     # tls = true (tls.py)
        else:
            s.smsc.append(str(e))
    s.smsc_stall_after = float(up.get("stall_after", s.smsc_stall_after))
    s.smsc_text_reading = str(up.get("text_reading", s.smsc_text_reading))
    if s.smsc_text_reading not in READINGS:
        raise SmppConfigError(f"{p}:{key_line(text, 'upstream', 'text_reading')}:1: [upstream] text_reading must be "
                              f"one of {', '.join(READINGS)}")
    s.smsc_system_id = up.get("system_id", s.smsc_system_id)
    s.smsc_password = up.get("password", s.smsc_password)
    s.smsc_window = int(up.get("window", s.smsc_window))
    s.smsc_response_timeout = float(up.get("response_timeout", s.smsc_response_timeout))
    t = tag.get("tlv_tag", s.tag_tlv)
    if t is not None and t is not False and not 0x1400 <= int(t) <= 0x3FFF:
        raise SmppConfigError(f"{p}:{key_line(text, 'tagging', 'tlv_tag')}:1: [tagging] tlv_tag must be a vendor tag "
                              "in 0x1400-0x3FFF")
    s.tag_tlv = int(t) if t not in (None, False) else None
    s.tag_prefix = tag.get("text_prefix", s.tag_prefix)
    s.silent_symbols = tuple(drop.get("silent_symbols", ()))
    s.rejected_receipt = bool(drop.get("rejected_receipt", True))
    s.confirm_shortcode = bool(sc.get("confirm", True))
    s.shortcode_replies_per_hour = int(sc.get("replies_per_hour", s.shortcode_replies_per_hour))
    if s.shortcode_replies_per_hour < 0:
        raise SmppConfigError(f"{p}:{key_line(text, 'shortcode', 'replies_per_hour')}:1: [shortcode] replies_per_hour "
                              f"must be 0 (no cap) or more, got {s.shortcode_replies_per_hour}")
    s.shortcode_replies.update(sc.get("replies", {}))
    s.shortcode_long_replies = sc.get("long_replies", s.shortcode_long_replies)     # (config_checks.py: its values)
    s.accounts = parse_accounts(p, raw, text)
    server_settings(s, config_dir, srv)          # [server] tls_* (tls.py)
    return s


from .config_checks import MAX_PASSWORD, octets_problem   # noqa: E402 (SMPP 3.4 §5.2: a bind's password)


def account_from_arg(arg: str, origin: str = "--esme-account") -> Account:
    """`SYSTEM_ID:PASSWORD` from the command line, with the documented default limits.

    The salt is derived from the system_id, not random: the same entry read again (a
    `ctl reload accounts` re-reads --esme-accounts-file) gives the same hash, so only a
    changed password counts as changed credentials. The hash lives in memory only."""
    if ":" not in arg:
        raise SmppConfigError("--esme-account: expected SYSTEM_ID:PASSWORD (no ':' in the value; not echoed: it may be a password)")
    sid, pw = arg.split(":", 1)
    if not sid or len(sid) > 15:
        raise SmppConfigError(f"--esme-account {sid!r}: system_id must be 1-15 characters")
    bad = octets_problem(sid, 15)
    if bad:             # SMPP 3.4 §5.2.1: no bind could carry it, so the account would refuse every bind
        raise SmppConfigError(f"--esme-account {sid!r}: the system_id {bad}")
    bad = octets_problem(pw, MAX_PASSWORD)
    if bad:             # this account could never bind; the password itself is never echoed
        raise SmppConfigError(f"--esme-account {sid!r}: the password {bad}")
    salt = hashlib.sha256(b"telfilter-cli-account\0" + sid.encode("utf-8", "surrogateescape")).digest()[:8]
    return Account(sid, hash_password(pw, salt=salt, iterations=1000), mo_prefixes=("",), origin=origin,
                   **DEFAULT_LIMITS)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m engine.smpp_proxy.accounts PASSWORD", file=sys.stderr)
        sys.exit(2)
    bad = octets_problem(sys.argv[1], MAX_PASSWORD)
    if bad:
        print(f"the password {bad}: no bind could carry it", file=sys.stderr)
        sys.exit(2)
    print(hash_password(sys.argv[1]))
