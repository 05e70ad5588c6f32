"""The submit path: judge each submitted message (or each concatenated message once), then
drop it, forward it byte for byte, or forward it tagged."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..verdict import Action, Message
from .codec import Tlv, concat_info, encode, encode_text, pdu_text, split_udh, with_sequence
from .codec import constants as C
from .codec import pdu as P

if TYPE_CHECKING:
    from .esme import EsmeSession

log = logging.getLogger("telfilter.smpp")


@dataclass
class _Concat:
    total: int
    parts: dict = field(default_factory=dict)       # seq -> (session, pdu, text)
    timer: object = None


class SubmitPath:
    """Mixin of `SmppProxy`: the ESME -> SMSC direction."""

    def _submit(self, sess: EsmeSession, pdu):
        cid = pdu.command_id
        text = pdu_text(pdu)
        ci = concat_info(getattr(pdu, "esm_class", 0), getattr(pdu, "short_message", b""), pdu.tlvs) \
            if cid == C.SUBMIT_SM else None
        if ci is not None and ci[1] > 1 and 1 <= ci[2] <= ci[1]:
            key = (sess.account.system_id, pdu.source_addr, pdu.destination_addr, ci[0], ci[1])
            c = self.concat.get(key)
            if c is None:
                c = self.concat[key] = _Concat(ci[1])
                c.timer = asyncio.get_running_loop().call_later(self.settings.concat_timeout, self._concat_due, key)
            c.parts[ci[2]] = (sess, pdu, text)
            if len(c.parts) == c.total:
                c.timer.cancel()
                self._concat_due(key)
            return
        dests = [pdu.destination_addr] if cid != C.SUBMIT_MULTI else [d[3] for d in pdu.dest_addresses if d[0] == 1]
        verdicts = [self._judge(sess, pdu.source_addr, d, text, type(pdu).__name__) for d in dests] if text is not None \
            else [None]
        drops = [v for v in verdicts if v is not None and v.action is Action.DROP]
        if drops:
            return self._drop(sess, [pdu], drops[0])
        tagged = next((v for v in verdicts if v is not None and v.action is Action.TAG), None)
        self._forward(sess, pdu, tagged)

    def _concat_due(self, key):
        c = self.concat.pop(key, None)
        if c is None:
            return
        parts = [c.parts[i] for i in sorted(c.parts)]
        live = [(s, p) for s, p, _ in parts if not s.closed]
        if not live:
            return
        texts = [t for _, _, t in parts]
        text = None if any(t is None for t in texts) else "".join(texts)
        if len(parts) < c.total:
            log.info("concatenated message %s: %d of %d parts after %.0fs; judging what arrived",
                     key[3], len(parts), c.total, self.settings.concat_timeout)
        sess0, pdu0 = live[0]
        v = self._judge(sess0, pdu0.source_addr, pdu0.destination_addr, text, f"SubmitSm x{len(parts)}/{c.total}") \
            if text is not None else None
        if v is not None and v.action is Action.DROP:
            for s, p in live:
                self._drop(s, [p], v)
            return
        for i, (s, p) in enumerate(live):
            # one verdict covers all parts; a tag goes on every part (TLV), the prefix on the first only
            self._forward(s, p, v if v is not None and v.action is Action.TAG else None, prefix=(i == 0))

    def _judge(self, sess, sender, recipient, text, what):
        t0 = time.perf_counter()
        msg = Message(sender=sender, recipient=recipient, text=text, time=self.clock(),
                      account=sess.account.system_id if sess.account else "", direction="mt")
        v = self.pipeline.judge(msg)
        us = (time.perf_counter() - t0) * 1e6
        self.stats[f"verdict_{v.action}"] += 1
        self.vlog.write({"ts": msg.time.isoformat(), "kind": "sms", "pdu": what, "account": msg.account,
                         "sender": sender, "recipient": recipient, "action": str(v.action),
                         "score": round(v.score, 4), "hits": [h.to_json() for h in v.hits], "judge_us": round(us, 1)})
        return v

    def _drop(self, sess, pdus, v):
        silent = any(h.symbol in self.settings.silent_symbols for h in v.hits if h.action is Action.DROP)
        for pdu in pdus:
            resp = P.response_class(pdu.command_id)
            if not silent:
                sess.send_pdu(resp(sequence_number=pdu.sequence_number, command_status=v.smpp_status))
                continue
            mid = f"L{next(self._local_ids):09d}"
            sess.send_pdu(resp(sequence_number=pdu.sequence_number, message_id=mid))
            if self.settings.rejected_receipt and getattr(pdu, "registered_delivery", 0) & 0x03:
                self._rejected_receipt(sess, pdu, mid)

    def _rejected_receipt(self, sess, pdu, mid):
        now = self.clock().strftime("%y%m%d%H%M")
        body = f"id:{mid} sub:001 dlvrd:000 submit date:{now} done date:{now} stat:REJECTD err:000 text:".encode()
        dr = P.DeliverSm(source_addr_ton=pdu.dest_addr_ton, source_addr_npi=pdu.dest_addr_npi,
                         source_addr=pdu.destination_addr, dest_addr_ton=pdu.source_addr_ton,
                         dest_addr_npi=pdu.source_addr_npi, destination_addr=pdu.source_addr,
                         esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=body,
                         tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"), Tlv(C.TAG_MESSAGE_STATE, b"\x08")))
        target = sess if sess.state.can_receive and not sess.closed else None
        self._deliver_receipt(sess.account.system_id, dr, target=target, on_done=lambda ok: None)

    def _tagged(self, pdu, v, prefix=True):
        tl = list(pdu.tlvs)
        if self.settings.tag_tlv is not None:
            tl.append(Tlv(self.settings.tag_tlv, f"{v.score:g};{','.join(v.symbols)}".encode()))
        p = pdu
        if prefix and self.settings.tag_prefix and pdu.command_id == C.SUBMIT_SM and pdu.short_message:
            udh, body = split_udh(pdu.esm_class, pdu.short_message)
            dc = pdu.data_coding
            try:
                if dc == 0x08:
                    new = self.settings.tag_prefix.encode("utf-16-be") + body
                elif dc in (0x00, 0x01, 0x03):
                    new = encode_text(self.settings.tag_prefix)[1] if dc == 0 else self.settings.tag_prefix.encode("latin-1")
                    new += body
                else:
                    new = None
            except (ValueError, UnicodeEncodeError):
                new = None
            if new is not None and len(udh) + len(new) <= 254:
                p = P.replace(p, short_message=udh + new)
        return P.replace(p, tlvs=tuple(tl))

    def _forward(self, sess, pdu, tag_verdict, prefix=True):
        link = self._pick_link()
        if link is None:
            self.stats["upstream_unavailable"] += 1
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        out = self._tagged(pdu, tag_verdict, prefix) if tag_verdict is not None else pdu.raw
        esme_seq = pdu.sequence_number
        acct = sess.account.system_id
        t0 = time.perf_counter()

        def on_resp(resp, status):
            if resp is None or resp.command_id == C.GENERIC_NACK:
                sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=esme_seq,
                                                              command_status=status or C.ESME_RSYSERR))
                return
            if resp.command_status == 0 and getattr(resp, "message_id", ""):
                self.msgid_account[resp.message_id] = acct
                if len(self.msgid_account) > 2_000_000:
                    self.msgid_account.popitem(last=False)
            sess.send_raw(with_sequence(resp.raw, esme_seq) if resp.raw else encode(P.replace(resp, sequence_number=esme_seq)))
            self.stats["forwarded"] += 1
            self.stats["added_us_total"] += int((time.perf_counter() - t0) * 1e6)
        link.request(out, on_resp)

    def _relay(self, sess, pdu):
        link = self._pick_link()
        if link is None:
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        esme_seq = pdu.sequence_number

        def on_resp(resp, status):
            if resp is None or resp.command_id == C.GENERIC_NACK:
                return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=esme_seq,
                                                                     command_status=status or C.ESME_RSYSERR))
            sess.send_raw(with_sequence(resp.raw, esme_seq))
        link.request(pdu.raw, on_resp)
