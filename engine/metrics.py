"""Prometheus metrics and health endpoints: `serve --metrics-listen HOST:PORT`.

    GET /metrics   Prometheus text format (prometheus_client)
    GET /healthz   200 while the process runs and, where an SMSC is configured, a link that takes submits is
                   bound (a receiver alone is not enough), and no durable writer's write failed in the last 10 s
                   (telfilter_disk_failing: the last one); 503 with every reason in the body otherwise
    GET /readyz    200 once start-up is complete (configs valid, listening), 503 while stopping
    GET /livez     200 whenever it answers: the event loop runs (a liveness probe; /healthz is 503 while the
                   SMSC is away, which a restart would not cure)

Theory of operation: verdicts are counted where the verdict log sees them
(`MeteredVerdictLog.write`), so every message and call that is judged and logged is counted
exactly once, by channel and action, with its hits and its judge time, in plain dicts of ints
(about 1 us per verdict); they become metric families only when scraped. Component statistics
(`SmppProxy.stats`, `SipScreen.stats`, ESME binds, SMSC links and windows, rules and model)
are read at scrape time by a collector, so the proxies carry no metrics code. The HTTP server
runs on serve's own event loop: scrapes read that state without locks or torn reads, and each
request is bounded (8 KiB of request head, 5 s, at most MAX_CONNECTIONS at once) so a scraper,
or anything else that reaches the port, cannot hold the element up.
"""
from __future__ import annotations

import asyncio
import logging

from bisect import bisect_left
from collections import defaultdict

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

from . import __version__
from .disktrouble import all_writers
from .listen import addr_text, listen_args
from .verdictlog import VerdictLog
from .smpp_proxy.smsc import parse_addr
from .sourcekey import source_key

log = logging.getLogger("telfilter")

MAX_PER_PEER = 8                # connections from one address (an IPv6 /64) at once: the others stay reachable
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_HEAD = 8192
JUDGE_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5)


class Metrics:
    def __init__(self, pipeline, proxy=None, sip=None):
        self.pipeline, self.proxy, self.sip = pipeline, proxy, sip
        self.state = None               # the durable state store, set by serve
        self.vlog = None                # the verdict log (MeteredVerdictLog sets it)
        self.ready = False
        # plain ints, turned into metric families at scrape time: prometheus_client's own
        # Counter/Histogram take a lock per increment (measured 8-10 us per verdict vs ~1 us)
        self.verdicts: dict = defaultdict(int)        # (channel, action) -> count
        self.hits: dict = defaultdict(int)            # (channel, symbol) -> count
        self.judge: dict = {}                         # channel -> [bucket counts..., +Inf], sum
        self.links_seen: dict = {}                    # (smsc, kind) of SMSC links, exported 0 while down
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(self))
        # what a NOC's dashboards expect of any process (process_resident_memory_bytes, process_cpu_seconds_total,
        # process_open_fds, process_start_time_seconds; python_info), read from /proc at scrape time only
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    # --- per verdict (hot path) ---
    def verdict(self, rec: dict) -> None:
        self.count("call" if rec.get("kind") == "call" else "sms", rec.get("action"),
                   [h.get("symbol") for h in rec.get("hits", ())], rec.get("judge_us"))

    def count(self, channel: str, action, symbols, us) -> None:
        self.verdicts[(channel, action)] += 1
        for sym in symbols:
            self.hits[(channel, sym)] += 1
        if us is not None:
            j = self.judge.get(channel)
            if j is None:
                j = self.judge[channel] = [[0] * (len(JUDGE_BUCKETS) + 1), 0.0]
            j[0][bisect_left(JUDGE_BUCKETS, us / 1e6)] += 1
            j[1] += us / 1e6

    # --- health ---
    def health(self) -> tuple[bool, str]:
        why = []
        p = self.proxy
        if p is not None and p.settings.smsc:
            bound = [l for l in getattr(p, "links", []) if getattr(l, "bound", False)]
            if not bound:
                why.append("no SMSC link bound")
            elif all(getattr(l, "kind", "") == "receiver" for l in bound):
                # (a transmitter + receiver pair whose transmitter is refused: every submit_sm is throttled)
                why.append("no SMSC link bound that takes submits (receiver only)")
        # a durable writer whose last write failed, or one in the last 10 s (a full or read-only data disk; one at the
        # edge of full refuses every other write: no 200/503 by turns, disktrouble.HOLD_S): the node still answers every
        # message, but loses its verdict lines, journals or snapshots; a load balancer drains it (a restart would
        # not cure a full disk: /livez stays 200). O(writers): the fixed list of engine/disktrouble.py
        failing = [t.writer for t in all_writers() if t.troubled()]
        if failing:
            why.append("disk writes failing: " + ", ".join(failing))
        return (False, "; ".join(why)) if why else (True, "ok")

    def readiness(self) -> tuple[bool, str]:
        return (True, "ready") if self.ready else (False, "not ready")

    # --- HTTP ---
    async def start(self, listen: str, serve: bool = True):
        host, _, port = listen.rpartition(":")
        self._conns = 0
        self._by_peer: dict = {}
        # `[::]` takes IPv4 peers too (engine/listen.py); a mapped peer is counted as its IPv4 address (source_key)
        self.server = await asyncio.start_server(self._serve, **listen_args(host.strip("[]") or "127.0.0.1", int(port)),
                                                 limit=MAX_REQUEST_HEAD, start_serving=serve)
        return self.server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        peer = source_key((writer.get_extra_info("peername") or ("?",))[0])     # an IPv6 peer: its /64
        per = self._by_peer.get(peer, 0)
        if self._conns >= MAX_CONNECTIONS or per >= MAX_PER_PEER:
            writer.close()           # one slow peer cannot hold every slot (a liveness probe must get in)
            return
        self._conns += 1
        self._by_peer[peer] = per + 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            method, path = _request_line(head)
            status, ctype, body = self._route(method, path)
            writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, _REASONS[status].encode(), ctype.encode(), len(body)))
            if method != "HEAD":
                writer.write(body)
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            pass                     # a slow, oversized or broken request: close it, nothing else
        except Exception:
            log.exception("metrics endpoint: internal error")
        finally:
            self._conns -= 1
            left = self._by_peer.get(peer, 1) - 1
            if left > 0:
                self._by_peer[peer] = left
            else:
                self._by_peer.pop(peer, None)
            writer.close()

    def _route(self, method: str, path: str):
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/livez":                # answered on serve's loop: answering at all is the proof
            return 200, "text/plain", b"alive\n"
        if path in ("/healthz", "/readyz"):
            ok, why = self.health() if path == "/healthz" else self.readiness()
            return (200 if ok else 503), "text/plain", why.encode() + b"\n"
        return 404, "text/plain", b"not found\n"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise ValueError("bad request line")
    return parts[0].decode("ascii"), parts[1].decode("ascii")


class MeteredVerdictLog(VerdictLog):
    """The verdict log, counting each verdict it writes."""

    def __init__(self, target, events, metrics: Metrics):
        super().__init__(target, events)
        self.metrics = metrics
        metrics.vlog = self                 # its lost lines, read at scrape time

    def write(self, rec: dict) -> None:
        self.metrics.verdict(rec)
        super().write(rec)

    def write_sms(self, msg, pdu: str, v, judge_us: float, binary: bool = False, reading: str | None = None,
                  status: int | None = None, late: bool = False) -> None:
        # the SMS hot path builds its line without a record dict: count from the verdict itself
        self.metrics.count("sms", str(v.action), [h.symbol for h in v.hits], judge_us)
        super().write_sms(msg, pdu, v, judge_us, binary, reading, status, late)

    def write_call(self, when, call_id, caller, callee, ingress, v, judge_us) -> None:
        self.metrics.count("call", str(v.action), [h.symbol for h in v.hits], judge_us)
        super().write_call(when, call_id, caller, callee, ingress, v, judge_us)


class _StateCollector:
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
                            ("shortcode_parts", getattr(p, "mo_parts_writer", None))):
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
        yield GaugeMetricFamily("telfilter_rules_reload_errors", "errors of the last refused rules reload",
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
                                         "empty, flushed, evicted), demoted (the server answered as a replica) and failovers (the sentinels "
                                         "named a new primary)",
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
                        ("consent_owners", len(L.consent))):
            sizes.add_metric([name], n)
        yield sizes
        r = getattr(pipe, "lists_reloads", None) or {}
        lr = CounterMetricFamily("telfilter_lists_reloads", "lists reloads (SIGHUP, ctl, a CLI change picked up)",
                                 labels=["result"])
        for k in ("ok", "refused"):
            lr.add_metric([k], r.get(k, 0))
        yield lr
        if r.get("last_seconds") is not None:
            yield GaugeMetricFamily("telfilter_lists_reload_seconds", "how long the last lists reload took (loaded in "
                                    "a worker thread, then swapped in)", value=r["last_seconds"])
