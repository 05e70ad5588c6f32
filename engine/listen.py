"""Listening sockets of every TCP listener (SMPP plain and TLS, SIP TCP, /metrics), and the address a peer is named by.

Theory of operation: `[::]` means both address families, as it does for the SIP UDP socket (Linux's default,
net.ipv6.bindv6only = 0) and as a carrier with a dual-stack core writes it. asyncio's create_server sets
IPV6_V6ONLY on every IPv6 socket it makes, so its `[::]` refused IPv4 peers; a `[::]` listener is made here
instead, with IPV6_V6ONLY off (socket.create_server's dualstack_ipv6), and handed to asyncio (`sock=`). Any other
host (`[::1]`, `0.0.0.0`, `127.0.0.1`, a name) is listened on by asyncio as before. SO_REUSEPORT (`serve
--workers N`: N processes on one port) and the backlog (asyncio's 100) are the same either way.
On a dual-stack socket an IPv4 peer is named `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2); `unmapped` gives its IPv4
address back where a connection is accepted, so accounts' allowed_networks, the per-source caps and the logs see
the address an operator configured (engine/sourcekey.py maps it too, for counting only). Once per connection; no I/O
in `unmapped`/`peer_of`.
"""
from __future__ import annotations

import os
import socket

BACKLOG = 100               # asyncio's create_server default, kept for the listeners made here
_MAPPED = "::ffff:"         # ::ffff:0:0/96 as inet_ntop writes it (RFC 4291 §2.5.5.2; RFC 5952 §5)


def listen_args(host: str, port: int, reuse_port: bool = False) -> dict:
    """Keyword arguments for loop.create_server / asyncio.start_server listening on host:port: a dual-stack
    socket for `::` (module docstring), else host and port as asyncio takes them."""
    if host == "::" and socket.has_dualstack_ipv6():
        sock = socket.create_server((host, port), family=socket.AF_INET6, backlog=BACKLOG, reuse_port=reuse_port,
                                    dualstack_ipv6=True)
        sock.setblocking(False)
        return {"sock": sock}
    return {"host": host, "port": port, "reuse_port": reuse_port or None}


def bind_error_text(e: OSError) -> str:
    """Why a listener could not be made, as a start-up error line ends: the system's words for the errno (asyncio's
    own text, "error while attempting to bind on address ('127.0.0.1', N): address already in use", said the address
    a second time), or the resolver's for a host it cannot find."""
    if isinstance(e, socket.gaierror):      # its errno is getaddrinfo's (EAI_NONAME -2), not one strerror knows
        return f"cannot resolve the host: {e.strerror}"
    return os.strerror(e.errno) if e.errno else str(e)


def addr_text(host: str, port) -> str:
    """host:port as a log line or an error names a peer or a listener: an IPv6 address in brackets
    (`[2001:db8::1]:2775`, RFC 3986 §3.2.2; `2001:db8::1:2775` is ambiguous)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_ref(host: str) -> str:
    """`host` as a Via sent-by or a URI writes it: an IPv6 address in brackets (RFC 3261 §25.1 IPv6reference;
    `::1:5060` is no host:port, Kamailio refuses such a Via: "bad ipv6 reference", and drops the request)."""
    return f"[{host}]" if ":" in host else host


def unmapped(host: str) -> str:
    """`host` (a peer address as the socket gives it), an IPv4-mapped IPv6 address as the IPv4 address it is."""
    if host.startswith(_MAPPED) and "." in host:
        return host[len(_MAPPED):]
    return host


def peer_of(peername) -> tuple:
    """A connection's peername as its (address, port, ...): a mapped IPv4 peer as (a.b.c.d, port), as an IPv4
    socket names it; ("?", 0) when there is none (already closed)."""
    if not peername:
        return ("?", 0)
    if peername[0].startswith(_MAPPED):
        return (unmapped(peername[0]), peername[1])
    return peername
