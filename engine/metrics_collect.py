"""The /metrics collector (engine/metrics.py's `_StateCollector`): the components' own statistics -- the proxy's
and the screen's stats, ESME binds, SMSC links and windows, rules, model, lists, the state store, DNC replication,
the big tables' bytes -- read at scrape time on the event loop and turned into metric families then, so the
components carry no metrics code.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

from . import __version__
from .disktrouble import all_writers
from .listen import addr_text
from .reload_counts import reload_counts
from .smpp_proxy.smsc import parse_addr

if TYPE_CHECKING:
    from .metrics import Metrics

JUDGE_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5)


class StateCollector:
    """Reads the components' own statistics at scrape time (on the event loop)."""

    def __init__(self, m: Metrics):
        self.m = m

    def collect(self):
        m = self.m
        p, sip, pipe = m.proxy, m.sip, m.pipeline
        v = CounterMetricFamily("telfilter_verdicts", "verdicts by channel and action", labels=["channel", "action"])
        for (channel, action), n in sorted(m.verdicts.items(), key=str):
            v.add_metric([channel, str(action)], n)
        yield v
        r = CounterMetricFamily("telfilter_refusals", "messages and calls answered unjudged (verdicts of action "
                                "refuse) by channel and the status answered: SMPP command_status, SIP code",
                                labels=["channel", "status"])
        for (channel, status), n in sorted(m.refusals.items(), key=str):
            r.add_metric([channel, str(status)], n)
        yield r
        u = CounterMetricFamily("telfilter_calls_unsent", "SIP calls judged and let through that never left "
                                "(call_unsent lines) by the status the screen answered", labels=["status"])
        for status, n in sorted(m.unsent.items(), key=str):
            u.add_metric([str(status)], n)
        yield u
        h = CounterMetricFamily("telfilter_hits", "symbol hits in verdicts", labels=["channel", "symbol"])
        for (channel, symbol), n in sorted(m.hits.items(), key=str):
            h.add_metric([channel, str(symbol)], n)
        yield h
        js = HistogramMetricFamily("telfilter_judge_seconds", "time to judge one message or call", labels=["channel"])
        for channel, (counts, total) in sorted(m.judge.items()):
            cum, buckets = 0, []
            for bound, c in zip(list(map(str, JUDGE_BUCKETS)) + ["+Inf"], counts):
                cum += c
                buckets.append((bound, cum))
            js.add_metric([channel], buckets, total)
        yield js
        if p is not None:
            ev = CounterMetricFamily("telfilter_smpp_events", "SMPP proxy event counts (SmppProxy.stats)", labels=["event"])
            for k, v in sorted(dict(getattr(p, "stats", {})).items()):
                if k != "added_us_total":
                    ev.add_metric([k], v)
            yield ev
            binds = GaugeMetricFamily("telfilter_smpp_binds", "open ESME binds by account", labels=["account"])
            for sid in sorted(getattr(p, "accounts", {})):
                binds.add_metric([sid], len(getattr(p, "binds", {}).get(sid, ())))
            yield binds
            up = GaugeMetricFamily("telfilter_smpp_upstream_bound", "SMSC link bound (1) or not (0)", labels=["smsc", "kind"])
            win = GaugeMetricFamily("telfilter_smpp_upstream_window", "outstanding requests on an SMSC link", labels=["smsc", "kind"])
            # a link that is down is not in p.links while it reconnects: every configured SMSC, and every
            # (smsc, kind) series it has had, reads 0 then instead of vanishing (an alert on `== 0` would see nothing).
            # Bounded: the configured SMSCs times the three bind kinds.
            seen = m.links_seen
            for name in getattr(getattr(p, "settings", None), "smsc", None) or ():
                smsc = addr_text(*parse_addr(name))          # as a link names its address (smsc_link.py: where)
                if not any(k[0] == smsc for k in seen):
                    seen[(smsc, "transceiver")] = None       # as a link first binds (smsc.py _link_loop)
            now = {}
            for link in list(getattr(p, "links", ())):
                addr = getattr(link, "addr", ("?", 0))
                lab = (addr_text(*addr[:2]), getattr(link, "kind", "?"))
                if lab[1] != "transceiver":
                    seen.pop((lab[0], "transceiver"), None)  # fell back to transmitter + receiver
                seen[lab] = None
                bound, n = now.get(lab, (0, 0))
                now[lab] = (bound or (1 if getattr(link, "bound", False) else 0),
                            n + len(getattr(getattr(link, "window", None), "pending", ()) or ()))
            for lab in seen:
                bound, n = now.get(lab, (0, 0))
                up.add_metric(list(lab), bound)
                win.add_metric(list(lab), n)
            yield up
            yield win
            # the durable writers off the loop: a disk that stalls shows here before anything is refused
            dw = GaugeMetricFamily("telfilter_durable_writes_waiting",
                                   "items waiting for a writer thread's disk write (engine/groupcommit.py)",
                                   labels=["writer"])
            for name, w in (("shortcode", getattr(p, "commands", None)), ("held_receipts", getattr(p, "held_writer", None)),
                            ("shortcode_parts", getattr(p, "mo_parts_writer", None)),
                            ("scheduled_ads", getattr(getattr(getattr(p, "scheduled", None), "log", None), "writer",
                                                      None))):
                if w is not None:
                    dw.add_metric([name], w.waiting)
            yield dw
            # the proxy's tables that grow with traffic, each read in O(1): what a soak or an operator watches to
            # tell a table filling to its bound (message_ids: 2M ids, msgids.py) from a leak. Each is bounded where
            # it is kept: held by max_held_receipts, early by max_early_receipts, concat by max_pending_concat,
            # sessions by max_connections, bind_failures by admission.MAX_KEYS
            tb = GaugeMetricFamily("telfilter_smpp_table_entries", "entries in the SMPP proxy's bounded tables "
                                   "(README: Operating it)", labels=["table"])
            concat, mo_concat = getattr(p, "concat", None), getattr(p, "mo_concat", None)
            throttle = getattr(p, "bind_throttle", None)
            for name, n in (("sessions", len(getattr(p, "sessions", ()))),
                            ("message_ids", len(getattr(p, "msgid_account", ()))),
                            ("held_receipts", getattr(p, "held_total", 0)),
                            ("early_receipts", len(getattr(p, "early_receipts", ()))),
                            ("receipts_after_resp", len(getattr(p, "receipts_after_resp", ()))),
                            ("concat_pending", len(concat) if concat is not None else 0),
                            ("concat_judged", len(concat.judged) if concat is not None else 0),
                            ("mo_concat_pending", len(mo_concat) if mo_concat is not None else 0),
                            ("scheduled_ads", len(getattr(p, "scheduled", ()))),
                            ("bind_failures", len(throttle.records) if throttle is not None else 0)):
                tb.add_metric([name], n)
            yield tb
            nxt = getattr(getattr(p, "tls_server", None), "crl_next_update", None)
            if nxt is not None:     # past it OpenSSL refuses every client certificate (tls_crl.py): alert before
                yield GaugeMetricFamily("telfilter_smpp_tls_client_crl_next_update_seconds", "the earliest nextUpdate "
                                        "of [server] tls_client_crl loaded (Unix time)", value=nxt)
        if sip is not None:
            ev = CounterMetricFamily("telfilter_sip_events", "SIP screen event counts (SipScreen.stats)", labels=["event"])
            for k, v in sorted(dict(getattr(sip, "stats", {})).items()):
                ev.add_metric([k], v)
            yield ev
            fin = CounterMetricFamily("telfilter_sip_final_responses", "final responses to INVITE transactions "
                                      "the SIP screen relayed or generated, by status code (each once)", labels=["code"])
            for k, v in sorted(dict(getattr(sip, "final_codes", {})).items()):
                fin.add_metric([k], v)
            yield fin
            # what SIP over TCP holds, against max_tcp_write_buffered / max_tcp_read_buffered (tcpwrites.py,
            # tcpreads.py): written and not acknowledged (as last seen: at most above the truth), waiting for
            # connects, read and not handled
            tb = GaugeMetricFamily("telfilter_sip_tcp_buffered_bytes", "bytes SIP over TCP holds, by what for "
                                   "(write: not acknowledged by peers; waiting: for outbound connects; read: not "
                                   "handled yet)", labels=["what"])
            w, r = getattr(sip, "tcp_writes", None), getattr(sip, "tcp_reads", None)
            if w is not None and r is not None:
                tb.add_metric(["write"], w.total)
                tb.add_metric(["waiting"], w.waiting)
                tb.add_metric(["read"], r.total)
            yield tb
        rules = pipe.rules
        # an info metric's labels stay put (a reload changing one would end its series and start another):
        # what a reload changes is a gauge of its own
        ri = InfoMetricFamily("telfilter_rules", "the rule set in force")
        ri.add_metric([], {"directory": str(getattr(rules, "directory", ""))})
        yield ri
        yield GaugeMetricFamily("telfilter_rules_generation", "rule sets swapped in since the start (1 = the first)",
                                value=getattr(pipe, "rules_generation", 1))
        yield GaugeMetricFamily("telfilter_rules_loaded", "rules in the set in force",
                                value=len(getattr(rules, "rules", ())))
        yield GaugeMetricFamily("telfilter_rules_reload_errors", "errors that refused the last rules reload (0 once "
                                "one succeeds)",
                                value=len(getattr(pipe, "rule_errors", ())))
        bi = InfoMetricFamily("telfilter_build", "the telfilter version running")
        bi.add_metric([], {"version": __version__})
        yield bi
        mi = InfoMetricFamily("telfilter_model", "the spam model in force")
        mi.add_metric([], {"version": str(getattr(pipe.model, "version", "none")) if pipe.model else "none"})
        yield mi
        # a full or read-only disk, per writer (engine/disktrouble.py): the signal to alert on
        de = CounterMetricFamily("telfilter_disk_write_errors", "writes a durable writer could not make (a full, "
                                 "read-only or failing disk), by writer", labels=["writer"])
        df = GaugeMetricFamily("telfilter_disk_failing", "1 while a writer's last write failed", labels=["writer"])
        for t in all_writers():
            de.add_metric([t.writer], t.errors)
            df.add_metric([t.writer], 1 if t.failing else 0)
        yield de
        yield df
        if m.vlog is not None:
            yield CounterMetricFamily("telfilter_verdict_log_lost_lines", "verdict lines that did not reach the log "
                                      "(a failed write, a full buffer)", value=m.vlog.lost_lines)
        st = m.state
        if st is not None:          # the durable state store (engine/state): disk trouble is loud
            yield CounterMetricFamily("telfilter_state_store_write_errors", "journal/snapshot writes that failed",
                                      value=getattr(st, "write_errors", 0))
            yield CounterMetricFamily("telfilter_state_store_unjournalled", "state updates dropped from the retry "
                                      "buffer (will not survive a crash)", value=getattr(st, "unjournalled", 0))
            yield GaugeMetricFamily("telfilter_state_store_pending", "state updates waiting for the journal",
                                    value=len(getattr(st, "buf", ())))
            shared = CounterMetricFamily("telfilter_shared_state", "shared state store (--state redis://): batches, "
                                         "messages, ops, converted verdicts, errors, fail_open, fail_closed, reconnects, "
                                         "given_back_after_timeout, caught_up and catch_up_lost (counts taken fail-open, committed on the "
                                         "server later or not), keyspace_lost (the server lost its keys: restarted "
                                         "empty, flushed, evicted), reseeded (counters of enforced caps put back "
                                         "from this process's mirror after a loss), reseed_waits (messages under an "
                                         "enforced cap held for the re-seed grace), demoted (the server answered "
                                         "as a replica) and failovers (the sentinels named a new primary)",
                                         labels=["event"])
            for k, v in getattr(st, "stats", {}).items():
                shared.add_metric([k], v)
            if getattr(st, "stats", None):
                yield shared
        rep = getattr(pipe, "replicator", None)
        if rep is not None:         # DNC changes and 5656 reports between nodes (state/replication.py)
            rc = CounterMetricFamily("telfilter_dnc_replication", "DNC replication through the Redis stream: entries "
                                     "published and applied (own, remote), reports, errors, rejoined, skipped_older "
                                     "(a change older than one in force), recalled_times", labels=["event"])
            for k, v in sorted(rep.stats.items()):
                if k != "delay_ms_last":
                    rc.add_metric([k], v)
            yield rc
            yield GaugeMetricFamily("telfilter_dnc_replication_pending", "DNC numbers and 5656 reports waiting to "
                                    "be published (Redis away)", value=rep.pending() + len(rep.out_reports))
        mem = getattr(getattr(pipe.state, "counters", None), "mem", None) or getattr(pipe.state, "counters", None)
        if hasattr(mem, "evicted"):
            ek = CounterMetricFamily("telfilter_state_evicted_keys", "live counter keys taken over at max_keys "
                                     "(their counts start again: non-zero means max_keys is too small)",
                                     labels=["namespace"])
            for ns, n in sorted(mem.evicted().items()):
                ek.add_metric([ns], n)
            yield ek
        # the bytes the big bounded tables hold, read at scrape time in O(tables), never per entry: what a soak's
        # RSS growth is attributed with (README: Operating it). The state store's tables (counters, recipient
        # histories, call durations: rules/slots.py memory_bytes, exact) and the message-id map's objects
        # (msgids.py memory_bytes: an O(1) estimate); with --state redis://, the ids learned from the other
        # processes are a second map of the same bound
        tb = GaugeMetricFamily("telfilter_table_bytes", "bytes held by the bounded tables that grow with "
                               "traffic, by table", labels=["table"])
        for name, n in pipe.state.memory_bytes().items():
            tb.add_metric([f"state_{name}"], n)
        ids = getattr(p, "msgid_account", None)
        if ids is not None:
            tb.add_metric(["message_ids"], ids.memory_bytes())      # (a pool's: its own ids only)
            learned = getattr(ids, "learned", None)
            if learned is not None:
                tb.add_metric(["message_ids_learned"], learned.memory_bytes())
        yield tb
        L = pipe.lists
        sizes = GaugeMetricFamily("telfilter_list_entries", "entries per list", labels=["list"])
        for name, n in (("dnc_sms", len(L.dnc_s)), ("dnc_voice", len(L.dnc_v)), ("senders", len(L.senders)),
                        ("blacklist_numbers", len(L.bl_numbers)), ("blacklist_domains", len(L.bl_domains)),
                        ("blacklist_ip_ranges", len(L.bl_ips)), ("consent_owners", len(L.consent)),
                        ("ml_exempt_numbers", len(L.ml_exempt))):
            sizes.add_metric([name], n)
        yield sizes
        yield CounterMetricFamily("telfilter_file_watcher_errors", "unexpected errors of serve's file watcher (list, "
                                  "rule and DNC journal changes): each logged with its traceback, once a minute at "
                                  "most; it keeps watching", value=pipe.watcher_errors)
        rc = CounterMetricFamily("telfilter_reloads", "reloads by part, put in force (ok) or refused (the old "
                                 "version kept, the error logged): SIGHUP, SIGUSR1, ctl reload, the file watcher",
                                 labels=["part", "result"])
        for part, by in reload_counts(pipe).items():
            for result, n in by.items():
                rc.add_metric([part, result], n)
        yield rc
        r = getattr(pipe, "lists_reloads", None) or {}
        lr = CounterMetricFamily("telfilter_lists_reloads", "lists reloads (SIGHUP, ctl, a CLI change picked up)",
                                 labels=["result"])
        for k in ("ok", "refused"):
            lr.add_metric([k], r.get(k, 0))
        yield lr
        parts = CounterMetricFamily("telfilter_lists_reload_lists", "lists reloads by list: read again (its files had "
                                    "changed, or a full reload) or kept as it was", labels=["list", "how"])
        for how in ("read", "kept"):
            for k, n in sorted((r.get(how) or {}).items()):
                parts.add_metric([k, how], n)
        yield parts
        if r.get("last_seconds") is not None:
            yield GaugeMetricFamily("telfilter_lists_reload_seconds", "how long the last lists reload took (loaded in "
                                    "a worker thread, then swapped in)", value=r["last_seconds"])
