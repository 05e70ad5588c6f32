"""A new set of ESME accounts put in force in a running proxy (`telfilter ctl reload accounts`).

Theory of operation. The caller has validated the whole new set (smpp.toml and the accounts
file); nothing here can fail half-way. The proxy's account table (`proxy.accounts`, the same
dict as `settings.accounts`) is updated in place, so a bind checked after this call sees the
new set. Each live bind is then compared with its account's new definition:

  kept, with the new limits     the account still exists, its password hash, allowed networks,
                                bind types and max_binds still admit this bind: the session's
                                account is the new Account (window, mo_prefixes, text_reading
                                apply from the next PDU) and the throughput bucket takes the
                                new rate, keeping the tokens it had (no fresh burst).
  unbound                       the account was removed, its password changed (the proof the
                                bind gave no longer holds: a leaked password is revoked at
                                once), its source network, client certificate (tls_identity.py)
                                or bind type is no longer allowed,
                                or it is over a lowered max_binds (the latest binds go first).

An unbound session is taken out of the routing table at once (no new receipts or MO go to
it), moved to UNBOUND so a submit that crosses our unbind on the wire gets ESME_RINVBNDSTS
(SMPP 3.4 §4.2: after an unbind no new request is valid), its parts waiting for their message
judged with what arrived, and sent an unbind; after the unbind_resp (or when the unbind times
out, the ESME window's expiry) it is closed once it has the answers to what it sent before. A deliver_sm it has
not acknowledged yet goes back to the held queue of its account (session_gone), so a receipt
is never lost (at worst delivered twice, SMPP's at-least-once).
"""
from __future__ import annotations

import logging

from .accounts import Account, TokenBucket
from .codec import pdu as P
from .tls_identity import refusal as tls_refusal

log = logging.getLogger("telfilter.smpp")

_BIND_KIND = {"BOUND_TX": "transmitter", "BOUND_RX": "receiver", "BOUND_TRX": "transceiver"}
# what an account's "changed" in a reload's answer compares (all but its name, origin and password checks)
_LIMITS = ("bind_types", "max_binds", "allowed_networks", "throughput", "window", "mo_prefixes", "text_reading",
           "receipt_after_resp", "tls_client_subject", "tls_client_sha256")


def _why_unbind(sess, new: Account | None, kept: int) -> str | None:
    if new is None:
        return "account removed"
    if new.password_hash != sess.account.password_hash:
        return "password changed"
    if not new.network_allowed(sess.peer[0]):
        return "source network no longer allowed"
    if tls_refusal(sess, new):                  # tied to a client certificate this connection did not present
        return "client certificate no longer allowed"
    if _BIND_KIND.get(sess.state.state) not in new.bind_types:
        return "bind type no longer allowed"
    if kept >= new.max_binds:
        return f"over max_binds {new.max_binds}"
    return None


def _unbind(proxy, sess, why: str) -> None:
    sid = sess.account.system_id
    log.info("unbinding ESME %s from %s: %s (accounts reloaded)", sid, sess.peer[0], why)
    lst = proxy.binds.get(sid)
    if lst is not None and sess in lst:
        lst.remove(sess)
    if sess.closed or sess.transport is None or sess.transport.is_closing():
        return
    sess.state.state = "UNBOUND"
    proxy.stats["unbound_by_reload"] += 1
    proxy.judge_parts_of(sess)
    proxy._send_to_esme(sess, P.Unbind(), lambda r, sess=sess: proxy.unbind_answered_by_esme(sess))


def apply_accounts(proxy, new: dict) -> dict:
    """Put `new` ({system_id: Account}) in force; returns what changed, for the ctl answer."""
    old = dict(proxy.accounts)
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(sid for sid in set(old) & set(new)
                     if any(getattr(old[sid], k) != getattr(new[sid], k) for k in _LIMITS + ("password_hash",)))
    for sid in set(old) & set(new):
        if new[sid].password_hash == old[sid].password_hash and new[sid] is not old[sid]:
            new[sid]._verified = old[sid]._verified      # passwords already checked stay cheap to check
    proxy.accounts.clear()
    proxy.accounts.update(new)           # the same dict as settings.accounts: binds see the new set now
    proxy._mo_index = None               # MO routing by prefix: made again from the new set
    unbound = []
    for sid, sessions in list(proxy.binds.items()):
        acc = new.get(sid)
        kept = 0
        for sess in list(sessions):
            if sess.account is None:
                continue
            why = _why_unbind(sess, acc, kept)
            if why is None:
                kept += 1
                sess.account = acc
            else:
                unbound.append({"system_id": sid, "peer": f"{sess.peer[0]}:{sess.peer[1]}", "why": why})
                _unbind(proxy, sess, why)
    for sid in list(proxy.buckets):
        acc = new.get(sid)
        b = proxy.buckets[sid]
        if acc is None:
            del proxy.buckets[sid]
        elif acc.throughput != b.rate:
            nb = TokenBucket(acc.throughput)
            nb.tokens, nb.t = min(b.tokens, nb.burst), b.t
            proxy.buckets[sid] = nb
    if added or removed or changed or unbound:
        log.info("accounts reloaded: %d added, %d removed, %d changed, %d binds unbound",
                 len(added), len(removed), len(changed), len(unbound))
    return {"accounts": len(new), "added": added, "removed": removed, "changed": changed, "unbound": unbound}
