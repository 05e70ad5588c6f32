"""`[sip]` settings (config/sip.toml) with their defaults; command-line options override them."""
from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

TRANSPORTS = {"UDP", "TCP"}
MAGIC = "z9hG4bK"                       # RFC 3261 §8.1.1.7
BRANCH_PREFIX = MAGIC + "tf"            # our Via branches: a response or a loop is recognised by it
TAG_PREFIX = "tf"                       # To tags of the answers we generate
TCP_BUFFERED_MIN = 1024 * 1024          # max_tcp_write_buffered, max_tcp_read_buffered at least: a connection's 1 MB
# message_concat_timeout at most: a held part's sender retransmits (Timer E) and gives up at Timer F, 64*T1 = 32 s;
# its answer must reach it well before, after a sweep's second of lateness and the next hop's own answer time
MESSAGE_CONCAT_TIMEOUT_MAX = 16.0


@dataclass
class SipSettings:
    listen: str = "0.0.0.0:5060"
    advertise: str = ""                     # host[:port] for our Via / Record-Route (default: listen address)
    next_hop: str = ""                      # host:port[;transport=tcp] for initial requests without a Route
    allow_networks: list = field(default_factory=lambda: ["127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                                          "172.16.0.0/12", "192.168.0.0/16"])
    # where else a call's answer may come from than the IP its INVITE was sent to (an SBC pair, a VIP
    # answering from its backends): a 200 from these networks answers a call too (responses._invite_final)
    answer_networks: list = field(default_factory=list)
    # RFC 3325 §5 (Spec(T)): the previous hops whose P-Asserted-Identity, Remote-Party-ID and P-Preferred-Identity
    # are believed (the INVITE's source address; over TCP its connection's peer). From any other, the caller is
    # From only (identity._caller). The default trusts every peer, as before the setting existed
    trusted_identity_networks: list = field(default_factory=lambda: ["0.0.0.0/0", "::/0"])
    # the source addresses SIP is taken from at all (sources.py): previous hops of requests, and next hops, whose
    # responses come back from them; a datagram from elsewhere is dropped unread, a TCP connection closed at
    # accept. The default takes it from every address, as before the setting existed
    accept_networks: list = field(default_factory=lambda: ["0.0.0.0/0", "::/0"])
    record_route: bool = False
    tag_header: str = "X-Spam-Score"
    display_prefix: str = ""
    remedy_url: str = "https://telfilter.example/remedy"
    default_drop_code: int = 603
    # what one peer may hold (RFC 3261 §18.3: a stream peer can stall us by never finishing a message)
    tcp_idle_timeout: float = 300.0         # seconds without any byte on a TCP connection
    tcp_incomplete_timeout: float = 10.0    # seconds a started message may stay unfinished
    max_tcp_connections: int = 1000         # inbound TCP connections in all
    max_tcp_per_source: int = 50            # inbound TCP connections from one IP address
    # outbound TCP connections (next hops, responses to a TCP Via), connects in flight included: at a cap the
    # least recently used idle one is closed, else the request is answered 503 (bounds.py)
    max_tcp_out_connections: int = 1000     # outbound TCP connections in all
    max_tcp_out_per_host: int = 50          # outbound TCP connections to one IP address (any port)
    # bytes queued for writing to all TCP connections together (in and out), peers not reading what we send; at the
    # bound the connection holding most is closed (tcpwrites.py). One connection holds 1 MB at most (tcp.py WRITE_MAX)
    max_tcp_write_buffered: int = 64 * 1024 * 1024
    # bytes read from all TCP connections together not handled yet; a connection that reads while they are over it is
    # not read until the screen has handled enough (tcpreads.py). One connection reads 32 KB at a time
    max_tcp_read_buffered: int = 64 * 1024 * 1024
    # fairness with the SMPP proxy on the same event loop (tcprounds.py: TcpRounds): per loop round, at
    # most batch_messages messages of one TCP connection, and batch_seconds of TCP work for all the
    # connections together (UDP: a batch of datagrams per round, see transport.py)
    batch_messages: int = 32
    batch_seconds: float = 0.005
    queue_datagrams: int = 4096             # UDP receive buffer: room for this many 2 KB datagrams (kernel-capped)
    # overload (shares.py): once the UDP socket has not been found empty for overload_after seconds, INVITEs from a
    # source over its fair share of the traffic are dropped unread. 0: never
    overload_after: float = 0.25
    # seconds between saves of the answered-call memory while serve runs, when it changed (dialogsave.py): what a
    # crash loses at most. 0: saved at a clean stop only; else at least 0.5. Each save is a fork (the loop pauses
    # for it, as for the state snapshot's once a minute): 30 s, two a minute; an RFC 4028 refresh comes 45 s or more
    # after the answer (Min-SE 90 s, refreshed at half)
    dialog_save_interval: float = 30.0
    # SIP MESSAGE requests (RFC 3428; SMS over IMS, 3GPP TS 24.341) judged as SMS (messaging.py); false relays them
    # as any other request, unjudged
    judge_messages: bool = True
    # the parts of a concatenated SMS in MESSAGEs (3GPP TS 24.341 bodies, a concatenation UDH) wait unanswered, their
    # retransmissions absorbed, until all are in and are judged whole (msgparts.py), at most this many seconds (then
    # judged with the parts they have; well under RFC 3261 Timer F, 32 s, the sender's give-up). 0: none waits (each
    # part judged at once with its message's parts known then). 1 s: a peer that sends the parts together (an
    # application server, a burst of SMS-DELIVERs) has them judged whole; a handset sends the next part only once the
    # one before has its RP-ACK (TS 24.011: one SM-RL transaction at a time), so its first part waits this long (up
    # to a second more: the sweep) and is judged alone, the later ones at once on the whole text known
    message_concat_timeout: float = 1.0
    max_pending_message_concat: int = 1024              # messages waiting for parts (at the bound the oldest judged)
    # ... and the memory their parts hold, in all (~6 KB a part); as much again the texts of messages remembered for
    # their late parts (msgparts._message_kept: the oldest forgotten over it)
    max_pending_message_concat_bytes: int = 16 << 20


def hostport(s: str, default_port=5060):
    host, sep, port = s.rpartition(":")
    if not sep or "]" in port:
        return s.strip("[]"), default_port
    return host.strip("[]"), int(port)


# the one name a host may be written as (no DNS on the call path: names must be configured as addresses); read as
# LOCAL_NAMES.get(host, host) wherever an address is needed
LOCAL_NAMES = {"localhost": "127.0.0.1"}


def parse_next_hop(s: str):
    """'host:port[;transport=udp|tcp]' -> (host, port, TRANSPORT)."""
    hp, _, params = s.partition(";")
    transport = "UDP"
    for p in params.split(";"):
        k, _, v = p.partition("=")
        if k.strip().lower() == "transport":
            transport = v.strip().upper()
    if transport not in TRANSPORTS:
        raise ValueError(f"next hop {s!r}: transport must be udp or tcp")
    try:
        host, port = hostport(hp.strip())
    except ValueError:
        raise ValueError(f"next hop {s!r}: the port must be a number (host:port)") from None
    if not host or not 0 < port < 65536:
        raise ValueError(f"next hop {s!r}: expected host:port[;transport=udp|tcp]")
    if host not in LOCAL_NAMES:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"next hop {s!r}: the host must be an IP address (names are not resolved on the call "
                             "path)") from None
    return host, port, transport


def next_hop_outside(next_hop: str, networks) -> str | None:
    """Why a next hop (parsed by parse_next_hop) could never be sent to: outside `networks` (allow_networks),
    so every call would be answered 503; None when it can."""
    host = parse_next_hop(next_hop)[0]
    ip = ipaddress.ip_address(LOCAL_NAMES.get(host, host))
    if getattr(ip, "ipv4_mapped", None) is not None:
        return f"next hop {next_hop!r} is an IPv4-mapped address: write the IPv4 address ({ip.ipv4_mapped})"
    n, v = int(ip), ip.version
    if any(v == ver and lo <= n <= hi for ver, lo, hi in permitted_ranges(networks)):
        return None
    return f"next hop {next_hop!r} is outside allow_networks ({', '.join(networks) or 'none'}): every call would get 503"


def udp_family_mismatch(listen: str, next_hop: str) -> str | None:
    """Why a UDP next hop could never be sent to from the listening socket (the screen sends UDP from it): an IPv4
    socket cannot send to an IPv6 address, nor an IPv6 one bound to an address (`[::1]`) to an IPv4 address (every
    call 503). None when it can (`[::]`, dual-stack, sends to IPv4 too), the next hop is reached over TCP (a socket
    of its own family) or either is a name."""
    host, _port, transport = parse_next_hop(next_hop)
    if transport != "UDP":
        return None
    fam = []
    for h in (hostport(listen)[0], host):
        h = LOCAL_NAMES.get(h, h) or "0.0.0.0"
        try:
            fam.append(ipaddress.ip_address(h).version)
        except ValueError:
            return None
    if fam[0] == fam[1] or (fam == [6, 4] and hostport(listen)[0] == "::"):
        return None                 # `[::]` is dual-stack: it sends to an IPv4 address as ::ffff:a.b.c.d (transport.py)
    return (f"the SIP listener {listen!r} is IPv{fam[0]} and the UDP next hop {next_hop!r} IPv{fam[1]}: UDP is sent "
            f"from the listening socket, which cannot reach it (every call would get 503); listen on an IPv{fam[1]} "
            "address, or reach the next hop over TCP (;transport=tcp)")


def permitted_ranges(networks) -> list:
    """allow_networks as (version, first, last) integer ranges; ValueError names a bad one."""
    out = []
    for n in networks:
        net = ipaddress.ip_network(n, strict=False)
        out.append((net.version, int(net.network_address), int(net.broadcast_address)))
    return out


def source_ranges(networks) -> list:
    """permitted_ranges of networks a source address is looked up in (sources.address_table), a network
    written IPv4-mapped (::ffff:10.0.0.0/104; a dual-stack socket names its IPv4 peers so, as the service log
    does) as the IPv4 network it is: the address is looked up as its IPv4 one, so that network held none."""
    out = []
    for ver, lo, hi in permitted_ranges(networks):
        if ver == 6 and lo >> 32 == 0xFFFF and hi >> 32 == 0xFFFF:
            ver, lo, hi = 4, lo & 0xFFFFFFFF, hi & 0xFFFFFFFF
        out.append((ver, lo, hi))
    return out


_ABSOLUTE_URI = re.compile(r"(?i:https?|sips?|tel|mailto):[^\x00-\x20\x7f<>\"]+")    # a scheme a caller can
# reach a remedy by (RFC 8688 §3.2's web page, SIP/tel number, mail), then no character that ends the <…> of a
# Call-Info (RFC 3261 §20.9) or a header line. RFC 3261's absoluteURI takes any scheme, which let
# `care.example:8080/x` (a forgotten https://) pass as the scheme "care.example"


def _check_values(s: SipSettings, p: Path, text: str) -> None:
    """What the types cannot say; a ValueError `path:line:1: message`."""
    from ..config import key_line

    def bad(key, msg):
        return ValueError(f"{p}:{key_line(text, 'sip', key)}:1: [sip] {key} {msg}")
    host, sep, port = s.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise bad("listen", f"must be HOST:PORT, not {s.listen!r}")
    for key in ("allow_networks", "answer_networks", "trusted_identity_networks", "accept_networks"):
        for n in getattr(s, key):
            try:
                permitted_ranges([n])
            except (ValueError, TypeError):
                raise bad(key, f"{n!r} is not an IP network") from None
    if s.next_hop:
        try:
            why = next_hop_outside(s.next_hop, s.allow_networks)
        except ValueError as e:
            raise bad("next_hop", str(e)) from None
        if why:
            raise bad("next_hop", why)
    if s.advertise:
        h, sep, port = s.advertise.rpartition(":") if not s.advertise.endswith("]") else ("", "", "")
        if (sep and (not h or not port.isdigit() or not 0 < int(port) < 65536)) or not (h if sep else s.advertise):
            raise bad("advertise", f"must be HOST or HOST:PORT (a port of 1-65535), not {s.advertise!r}")
    if s.remedy_url and not _ABSOLUTE_URI.fullmatch(s.remedy_url):
        # sent inside <> in every 603/608: a line break would be a header of its own
        raise bad("remedy_url", f"must be an absolute URI (https:, http:, sip:, sips:, tel: or mailto:, no spaces, "
                                f"quotes, <, > or control characters; \"\" leaves Call-Info out), not {s.remedy_url!r}")
    if not 400 <= s.default_drop_code <= 699:
        raise bad("default_drop_code", f"must be a final error code 400-699, not {s.default_drop_code}")
    for k in ("tcp_idle_timeout", "tcp_incomplete_timeout", "batch_seconds", "max_tcp_connections",
              "max_tcp_per_source", "max_tcp_out_connections", "max_tcp_out_per_host", "batch_messages",
              "queue_datagrams"):
        if getattr(s, k) <= 0:
            raise bad(k, f"must be above 0, not {getattr(s, k)!r}")
    for k in ("max_tcp_write_buffered", "max_tcp_read_buffered"):     # (tcp.py WRITE_MAX, one connection's)
        if getattr(s, k) < TCP_BUFFERED_MIN:
            raise bad(k, f"must be at least {TCP_BUFFERED_MIN} (one connection's 1 MB), not {getattr(s, k)!r}")
    if not 0 <= s.message_concat_timeout <= MESSAGE_CONCAT_TIMEOUT_MAX:
        raise bad("message_concat_timeout", f"must be 0 (parts not held) to {MESSAGE_CONCAT_TIMEOUT_MAX} seconds (well "
                                            f"under RFC 3261 Timer F, 32 s), not {s.message_concat_timeout!r}")
    if s.max_pending_message_concat < 1:
        raise bad("max_pending_message_concat", f"must be at least 1, not {s.max_pending_message_concat!r}")
    if s.max_pending_message_concat_bytes < 65536:
        raise bad("max_pending_message_concat_bytes", f"must be at least 65536, not "
                                                      f"{s.max_pending_message_concat_bytes!r}")
    if s.overload_after < 0:
        raise bad("overload_after", f"must be 0 (off) or above, not {s.overload_after!r}")
    if s.dialog_save_interval != 0 and s.dialog_save_interval < 0.5:       # a fork per save: not many a second
        raise bad("dialog_save_interval", f"must be 0 (off) or at least 0.5, not {s.dialog_save_interval!r}")


def load_sip_settings(config_dir: Path) -> SipSettings:
    s = SipSettings()
    p = Path(config_dir) / "sip.toml"
    if p.exists():
        try:
            text = p.read_text(encoding="utf-8-sig")     # -sig: a BOM (Notepad's UTF-8) is no TOML statement
            doc = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: {e}") from None
        from ..config import key_line
        for table in doc:
            if table != "sip":
                raise ValueError(f"{p}:{key_line(text, table)}:1: unknown table [{table}] (the settings are in [sip])")
        raw = doc.get("sip", {})
        types = {f.name: type(getattr(s, f.name)) for f in fields(s)}
        for k, v in raw.items():
            if k not in types:
                close = difflib.get_close_matches(k, list(types), n=1)
                raise ValueError(f"{p}:{key_line(text, 'sip', k)}:1: unknown key [sip] {k}"
                                 + (f" (did you mean {close[0]!r}?)" if close else ""))
            want = types[k]
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or (want is int and isinstance(v, bool)):
                kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                        list: "a list"}.get(want, want.__name__)
                raise ValueError(f"{p}:{key_line(text, 'sip', k)}:1: [sip] {k} must be {kind}, not {v!r}")
            if want is float and not math.isfinite(v):      # nan passes every `<= 0` check after this
                raise ValueError(f"{p}:{key_line(text, 'sip', k)}:1: [sip] {k} must be a finite number, not {v!r}")
            setattr(s, k, v)
        _check_values(s, p, text)
    return s
