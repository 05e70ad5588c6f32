"""Where a request goes and what the screen writes into it: the destination (RFC 3261 §16.6
steps 6-7, RFC 3263 §4.1), the received/rport stamp on the top Via (§18.2.1, RFC 3581), our
branch (§16.11) and the To tag of our own answers. Mixed into SipScreen; no I/O.
"""
from __future__ import annotations

import hashlib
import ipaddress
import socket

from .grammar import parse_name_addr, parse_uri, split_list
from .settings import BRANCH_PREFIX, TAG_PREFIX, TRANSPORTS

try:                                # the pump's own blake2b (one call, no hash object); a plain Via's stamp in C
    from ._sipfast import blake2b_hex as _blake2b_hex, stamp_params as _c_stamp
except ImportError:
    _c_stamp = None

    def _blake2b_hex(data: bytes, n: int) -> str:
        return hashlib.blake2b(data, digest_size=n).hexdigest()


_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _local_address(host: str, listen: str) -> bool:
    """Whether `host` (a URI host: an IPv6 reference in brackets) is an address of this host that a listener on the
    wildcard `listen` receives on (no name is resolved: a name is never). A loopback address is; another one when
    the kernel routes to it as to itself: a UDP socket connected to it (nothing is sent) takes it as its own source.
    Not whether a socket binds to it: one binds to the wildcard, a multicast group or the limited broadcast, and to
    any address at all on a host with ip_nonlocal_bind set (keepalived's), none of them this host's."""
    try:
        ip = ipaddress.ip_address(host[1:-1] if host[:1] == "[" else host)
    except ValueError:
        return False
    if ip.version == 6 and listen == "0.0.0.0":
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast or ip == _BROADCAST:
        return False
    if ip.is_loopback:
        return True
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((str(ip), 9))
            return ipaddress.ip_address(s.getsockname()[0].partition("%")[0]) == ip
        except (OSError, ValueError):
            return False


class Routing:
    """Mixed into SipScreen."""

    def _destination(self, msg, to_tag):
        """(host, port, TRANSPORT) per §16.6 steps 6-7 and RFC 3263 §4.1, or None."""
        if "route" in (msg.first or msg.first_values()):    # (kept by check_request: no frame)
            routes = msg.values("route")
            u = parse_uri(parse_name_addr(routes[0]).uri)
            if (u.host, u.port or 5060) in self.me:
                msg.pop_first_value("Route")            # §16.4: the top Route is us
                routes = routes[1:]
            if routes:
                return self._uri_dest(parse_uri(parse_name_addr(routes[0]).uri))
            if to_tag:                                  # in a dialog: it came by the route set, to the URI
                return self._in_dialog_dest(msg)
            # an initial request whose only Route was us (a UA's preloaded outbound proxy): as without one
        if not to_tag and (hop := self.next_hop()) is not None:
            return hop                                  # initial requests only; in-dialog ones follow the URI
        return self._in_dialog_dest(msg) if to_tag else self._uri_dest(parse_uri(msg.uri))

    def _addressed_to_us(self, msg) -> bool:
        """Whether a request (checked: `msg.ruri` parsed) is addressed to the screen itself, not through it: a SIP
        Request-URI with no user part naming one of our addresses and port (RFC 3261 §11: an OPTIONS "addressed to a
        proxy server" has no user part, as a REGISTER's; Kamailio's and OpenSIPS's keep-alive answer reads it so),
        and no Route beyond our own (§16.4: one naming us is ours to remove; any other sends it on)."""
        u = msg.ruri
        if u is None or u.scheme != "sip" or u.user or not self._names_us(u.host, u.port or 5060):
            return False
        if "route" in msg.first_values():
            for v in msg.values("route"):
                r = parse_uri(parse_name_addr(v).uri)
                if not self._names_us(r.host, r.port or 5060):
                    return False
        return True

    def _names_us(self, host: str, port: int) -> bool:
        """(host, port) is the screen: our advertised or bound address (`me`), or, listening on every address
        (`0.0.0.0`, `[::]`), the listening port on an address of this host (a softswitch pings the address it
        sends calls to, not the advertised one)."""
        host = host.lower()
        if (host, port) in self.me:
            return True
        where = getattr(self, "_where", None)
        if where is None or where[0] not in ("0.0.0.0", "::", "") or port != where[1]:
            return False
        local = self.local_hosts.get(host)
        if local is None:
            local = _local_address(host, where[0])
            if len(self.local_hosts) >= 4096:           # bounded: one entry per host text a peer writes
                self.local_hosts.clear()
            self.local_hosts[host] = local
        return local

    def _in_dialog_dest(self, msg):
        """An in-dialog request with no Route left goes to its Request-URI (§16.6 step 6); one whose Request-URI
        names the screen itself goes where initial requests go, the next hop (§16.5: the screen is responsible
        for that URI, and the next hop is how it finds targets). A UA that sends ACK and BYE to its proxy with
        the INVITE's Request-URI, as sipp's built-in `uac` does, had them looped back to the screen and
        answered 482: every call failed. (The fast paths and the pump send such requests to the same next hop
        themselves, given it: fastpath.py_in_dialog's `hop`, _sipdialog.h; without one they leave them here.)"""
        u = parse_uri(msg.uri)
        if (u.host, u.port or 5060) in self.me and self.next_hop() is not None:
            return self.next_hop()
        return self._uri_dest(u)

    @staticmethod
    def _uri_dest(u):
        if u.scheme not in ("sip", "sips") or not u.host:
            return None
        t = "TLS" if u.scheme == "sips" else u.params.get("transport", "udp").upper()
        if t not in TRANSPORTS:
            return None                                 # TLS, SCTP, WS: not offered by this screen
        return u.host, u.port or 5060, t

    def _stamp_received(self, msg, src) -> str:
        """Add received / rport to the top Via; return the new top Via value. A received or an rport value
        the sender wrote itself (never its to write: §18.2.1, RFC 3581 §4) is overwritten with what the
        packet came from: responses are never reflected to an address the sender names."""
        for h in msg.headers:
            if h[2] == "via":
                v = h[1]
                if "," in v:
                    first, *rest = split_list(v)
                else:                                   # (one value, the common case: no list made to unpack into)
                    first, rest = v, None
                via = msg.vias[0]
                vp = via.params
                add = ""
                if "received" in vp or "rport" in vp:
                    # every copy, its name read as the grammar reads it (split at ';', stripped of any blank):
                    # the source it came from. rport only on request (RFC 3581 §4; over TCP the connection to
                    # answer on is named in our own Via, forwarding.py)
                    stamped = _c_stamp(first, src[0], src[1]) if _c_stamp is not None else None
                    if stamped is None:                 # (not plain: the same rewrite in Python)
                        head, _, params = first.partition(";")
                        parts = params.split(";")
                        for i, kv in enumerate(parts):
                            k = kv.partition("=")[0]
                            name = k.strip().lower()
                            if name == "received":
                                parts[i] = f"{k}={src[0]}"
                            elif name == "rport":
                                parts[i] = f"{k}={src[1]}"
                        stamped = head + ";" + ";".join(parts)
                    first = stamped
                # RFC 3581 §4: with rport, received even when it equals the sent-by (§18.2.1: when it differs)
                if "received" not in vp and (via.host != src[0].lower() or "rport" in vp):
                    add += f";received={src[0]}"
                first += add
                h[1] = ", ".join([first, *rest]) if rest else first
                return first
        return ""

    @staticmethod
    def _branch(top_key: str, base: str) -> str:
        key = top_key + "|" + base
        return BRANCH_PREFIX + _blake2b_hex(key.encode("utf-8", "surrogateescape"), 10)

    @staticmethod
    def _tag(msg) -> str:
        """The To tag of our answers to `msg`: a function of its Call-ID and From tag, which the ACK
        for such an answer repeats (§17.1.1.3), so that ACK is recognised by recomputing it, not by
        a prefix a UAS's own random tag may share. The From tag, not the whole From value: the
        display name may have been edited (display_prefix) before a 503, and a UA may re-space it."""
        key = (msg.get("call-id") or "") + "|" + msg.tag("from")
        return TAG_PREFIX + _blake2b_hex(key.encode("utf-8", "surrogateescape"), 6)
