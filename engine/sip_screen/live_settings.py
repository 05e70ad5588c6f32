"""New sip.toml settings put in force in a running SIP screen (`telfilter ctl reload sip`).

The caller has validated the file (load_sip_settings checks types, networks, the next hop);
nothing here can fail half-way. Every setting is read from `screen.s` when it is used, so
swapping the object applies it to the next message; what was derived from it at start is
derived again here: the permitted networks' integer ranges (and the per-address cache of
that check is emptied, and the C pump, which keeps its own copy, is rebuilt); the answer_networks,
trusted_identity_networks and accept_networks ranges are derived again at their first use after the swap (a
new list); the C pump's copy of accept_networks is rebuilt, and inbound TCP connections from addresses a new
accept_networks leaves outside are closed.

What cannot change without a restart is kept as it runs and reported: `listen` (the bound
sockets) and `advertise` (our Via / Record-Route identity: transactions in flight carry
the old one and their responses must still be recognised as ours). A lowered TCP cap
refuses new connections until the count is below it; open ones are not closed (outbound: idle ones
are closed for a new one when that brings the count under the cap, bounds.py). The TCP caps are
claimed again in the process's fd budget (engine/fdbudget.py FdBudget), raised or lowered: what the
fd limit cannot give is lowered in proportion with the budget's warning; a limit too low for them
keeps the caps in force, with a warning saying why. Settings
given on the command line (--sip-next-hop, --sip-allow-networks, --sip-listen) keep
overriding the file, as they did at start.
"""
from __future__ import annotations

import logging
from dataclasses import fields

from ..fdbudget import FdBudgetError
from .settings import SipSettings, permitted_ranges

log = logging.getLogger("telfilter.sip")

RESTART_ONLY = ("listen", "advertise")


def apply_sip_settings(screen, new: SipSettings, overrides: dict) -> dict:
    """Put `new` in force on `screen`; `overrides` are the command line's {setting: value}."""
    old = screen.s
    for k, v in overrides.items():
        setattr(new, k, v)
    needs_restart = [k for k in RESTART_ONLY if getattr(new, k) != getattr(old, k)]
    for k in needs_restart:
        setattr(new, k, getattr(old, k))
    caps = ("max_tcp_connections", "max_tcp_out_connections")
    if getattr(screen, "fd_claimed", False) and any(getattr(new, k) != getattr(old, k) for k in caps):
        try:
            screen._claim_fds(new)      # raised or lowered within the fd budget (its warning if lowered)
        except FdBudgetError as e:
            log.warning("sip.toml %s: not applied, the caps in force (%s) are kept: %s. Raise the hard limit "
                        "(systemd LimitNOFILE=, ulimit -Hn as root) or lower the caps",
                        ", ".join(f"{k} = {getattr(new, k)}" for k in caps),
                        ", ".join(str(getattr(old, k)) for k in caps), getattr(e, "reason", e))
            for k in caps:
                setattr(new, k, getattr(old, k))
    changed = [f.name for f in fields(new) if getattr(new, f.name) != getattr(old, f.name)]
    ranges = permitted_ranges(new.allow_networks)
    screen.s = new
    if new.allow_networks != old.allow_networks:
        screen.ranges = ranges
        screen.permit_cache.clear()
    if new.allow_networks != old.allow_networks or new.accept_networks != old.accept_networks \
            or new.next_hop != old.next_hop:
        ep = getattr(screen, "udp_endpoint", None)
        if ep is not None and ep.loop is not None:
            ep.refresh()                # the C pump keeps its own copy of these (and of the next hop)
    if new.accept_networks != old.accept_networks:
        _close_refused(screen)
    screen.next_hop()                   # parsed now (validated by the loader), not on the next INVITE
    if changed or needs_restart:
        log.info("sip.toml reloaded: changed %s%s", ", ".join(changed) or "nothing",
                 f"; needs a restart: {', '.join(needs_restart)}" if needs_restart else "")
    return {"changed": changed, "needs_restart": needs_restart, "overridden_by_command_line": sorted(overrides)}


def _close_refused(screen) -> None:
    """Inbound TCP connections whose peer a new accept_networks leaves outside are closed (nothing more they sent
    is handled), as a new one from it would be at accept."""
    gone = [c for c in list(screen.tcp_conns.values()) if c.key is None and not screen.accepts(c.peer[0])]
    for c in gone:
        c.close()
    if gone:
        log.warning("sip.toml accept_networks: closed %d TCP connection(s) from outside them (%s)", len(gone),
                    ", ".join(sorted({c.peer[0] for c in gone})[:10]))

