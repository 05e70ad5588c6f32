"""Where a submit_sm's time goes inside `telfilter serve`: `python -m benchmarks.smpp_trace OUT.json serve …`.

A diagnostic runner like benchmarks.proxy_runner (the proxy under test in its own process, as
`python -m engine.cli serve …` runs it), with the SMPP proxy's edges wrapped so that every
forwarded submit_sm carries five stamps:

    read      the ESME read callback that brought it began
    judged    it was handed to an SMSC link (decoded, judged, logged)
    up        the bytes were written to the SMSC socket
    resp      the SMSC read callback that brought its submit_sm_resp began
    down      the resp was written to the ESME socket

and the loop around them is sampled: how long each ESME / SMSC read callback ran and how many
PDUs it carried, the verdict log's cost per line, GC pauses, and loop lag (a 1-ms timer's
lateness: how long bytes that arrive now would wait before the loop looks). Nothing the proxy
decides is changed; the wrapping costs a few µs per message, so read CPU figures from
benchmarks.smpp_cpu, not from here. The summary (percentiles in µs) is written to OUT.json when
the process exits (after SIGTERM). Run it through `python -m benchmarks.smpp_p99 --trace`.
"""
from __future__ import annotations

import atexit
import gc
import json
import sys
from pathlib import Path
from time import perf_counter as now

import numpy as np

STAGES = ("read", "judged", "up", "resp", "down")
MAX_RECORDS = 400_000          # bounded: a long run keeps the first this many


class _Tx:
    """A transport whose writes stamp the trace records waiting on it."""

    def __init__(self, t, waiting: list, idx: int, writes: list):
        self._t, self._waiting, self._idx, self._writes = t, waiting, idx, writes

    def write(self, data):
        t = now()
        for rec in self._waiting:
            rec[self._idx] = t
        self._writes.append(len(self._waiting))
        self._waiting.clear()
        return self._t.write(data)

    def __getattr__(self, name):
        return getattr(self._t, name)


class Tracer:
    def __init__(self):
        self.recs: list[list] = []
        self.esme_cb: list[tuple] = []       # (duration s, pdus)
        self.smsc_cb: list[tuple] = []
        self.vlog_s: list[float] = []
        self.lag: list[float] = []
        self.slices: list[float] = []
        self.up_writes: list[int] = []       # traced requests per SMSC socket write
        self.down_writes: list[int] = []     # traced resps per ESME socket write
        self.cur_read = 0.0
        self.cur_resp = 0.0
        self.cur_fwd = None
        self.queued = 0                      # PDUs put in the inbox so far
        self.gc = None

    def install(self):
        from engine import verdictlog
        from engine.smpp_proxy import esme, smsc, submit
        tr = self
        E, L = esme.EsmeSession, smsc.SmscLink

        e_made, l_made = E.connection_made, L.connection_made

        def esme_made(self, transport):
            self._trace_q = []
            e_made(self, _Tx(transport, self._trace_q, 4, tr.down_writes))
        E.connection_made = esme_made

        def link_made(self, transport):
            self._trace_q = []
            l_made(self, _Tx(transport, self._trace_q, 2, tr.up_writes))
        L.connection_made = link_made

        e_rx, l_rx = E.data_received, L.data_received

        def esme_rx(self, data):
            t0 = tr.cur_read = now()
            # PDUs this read took in: queued for the inbox (inbox.py), else judged inside the callback
            n0 = tr.queued + self.proxy.stats["sms_seen"]
            e_rx(self, data)
            tr.esme_cb.append((now() - t0, tr.queued + self.proxy.stats["sms_seen"] - n0))
        E.data_received = esme_rx

        def link_rx(self, data):
            t0 = tr.cur_resp = now()
            e = data.count(b"\x80\x00\x00\x04")          # submit_sm_resp command_ids, near enough
            l_rx(self, data)
            tr.smsc_cb.append((now() - t0, e))
        L.data_received = link_rx

        try:                                # PDUs queued between read and handling (inbox.py)
            from engine.smpp_proxy import inbox
        except ImportError:
            inbox = None
        if inbox is not None:
            put, handle, run = inbox.Inbox.put, E.handle, inbox.Inbox.run
            read_at: dict = {}

            def traced_put(self, sess, pdu):
                read_at[id(pdu)] = tr.cur_read
                tr.queued += 1
                put(self, sess, pdu)
            inbox.Inbox.put = traced_put

            def traced_handle(sess, pdu):
                tr.cur_read = read_at.pop(id(pdu), tr.cur_read)
                handle(sess, pdu)
            E.handle = traced_handle

            def traced_run(self):
                t0 = now()
                run(self)
                tr.slices.append(now() - t0)
            inbox.Inbox.run = traced_run

        judge = submit.SubmitPath._judge
        judge_now = getattr(submit.SubmitPath, "_judge_now", None)     # (judged at once, no shared store)

        def counted_judge(self, *a, **k):
            if judge_now is None or self.pipeline.state.shared is not None:     # else counted below
                self.stats["sms_seen"] += 1
            return judge(self, *a, **k)
        submit.SubmitPath._judge = counted_judge
        if judge_now is not None:
            def counted_judge_now(self, *a, **k):
                self.stats["sms_seen"] += 1
                return judge_now(self, *a, **k)
            submit.SubmitPath._judge_now = counted_judge_now

        fwd, request = submit.SubmitPath._forward, L.request
        forward = getattr(L, "forward", None)            # the submit path's request() for raw bytes

        def traced_forward(self, sess, pdu, *a, **k):
            tr.cur_fwd = sess
            try:
                return fwd(self, sess, pdu, *a, **k)
            finally:
                tr.cur_fwd = None
        submit.SubmitPath._forward = traced_forward

        def traced(send):
            def traced_request(self, raw, on_resp):
                sess = tr.cur_fwd
                if sess is None:
                    return send(self, raw, on_resp)
                rec = [tr.cur_read, now(), 0.0, 0.0, 0.0]
                self._trace_q.append(rec)

                def resp(r, status):
                    rec[3] = tr.cur_resp
                    on_resp(r, status)
                    if status >= 0 and len(tr.recs) < MAX_RECORDS:
                        sess._trace_q.append(rec)
                        tr.recs.append(rec)
                send(self, raw, resp)
            return traced_request
        L.request = traced(request)
        if forward is not None:
            L.forward = traced(forward)

        drop = submit.SubmitPath._drop

        def traced_drop(self, sess, pdus, v):
            t = now()
            if len(tr.recs) < MAX_RECORDS:         # answered here: judged = up = resp
                rec = [tr.cur_read, t, t, t, 0.0]
                sess._trace_q.append(rec)
                tr.recs.append(rec)
            return drop(self, sess, pdus, v)
        submit.SubmitPath._drop = traced_drop

        for name in ("write_sms",):
            orig = getattr(verdictlog.VerdictLog, name)

            def timed(self, *a, _orig=orig, **k):
                t0 = now()
                _orig(self, *a, **k)
                tr.vlog_s.append(now() - t0)
            setattr(verdictlog.VerdictLog, name, timed)

    def start_lag_probe(self, loop, every=0.001):
        due = [now() + every]

        def tick():
            t = now()
            self.lag.append(t - due[0])
            due[0] = t + every
            loop.call_later(every, tick)
        loop.call_later(every, tick)

    def summary(self) -> dict:
        def pct(xs, scale=1e6):
            if not len(xs):
                return None
            a = np.asarray(xs, dtype=float) * scale
            return {"n": int(len(a)), "p50": round(float(np.percentile(a, 50)), 1),
                    "p90": round(float(np.percentile(a, 90)), 1), "p99": round(float(np.percentile(a, 99)), 1),
                    "max": round(float(a.max()), 1)}
        r = np.array([x for x in self.recs if all(x)], dtype=float)
        out = {}
        if len(r):
            for i in range(1, len(STAGES)):
                out[f"{STAGES[i - 1]}->{STAGES[i]}_us"] = pct(r[:, i] - r[:, i - 1])
            out["in_proxy_us"] = pct((r[:, 4] - r[:, 0]) - (r[:, 3] - r[:, 2]))
            out["read->down_us"] = pct(r[:, 4] - r[:, 0])
        out["esme_read_cb_us"] = pct([d for d, _ in self.esme_cb])
        out["esme_read_pdus"] = pct([n for _, n in self.esme_cb], 1)
        out["smsc_read_cb_us"] = pct([d for d, _ in self.smsc_cb])
        out["smsc_read_resps"] = pct([n for _, n in self.smsc_cb], 1)
        out["inbox_slice_us"] = pct(self.slices)
        out["verdict_line_us"] = pct(self.vlog_s)
        out["loop_lag_us"] = pct(self.lag[1000:])
        out["requests_per_smsc_write"] = pct(self.up_writes, 1)
        out["resps_per_esme_write"] = pct(self.down_writes, 1)
        out["gc"] = self.gc.summary() if self.gc else None
        return out


def main(argv) -> int:
    from .longrun import GcTimer
    out, args = Path(argv[0]), argv[1:]
    tr = Tracer()
    tr.gc = GcTimer()
    gc.callbacks.append(tr.gc)
    tr.install()
    from engine.smpp_proxy import server
    start = server.SmppProxy.start

    async def traced_start(self, *a, **k):
        import asyncio
        tr.start_lag_probe(asyncio.get_running_loop())
        return await start(self, *a, **k)
    server.SmppProxy.start = traced_start
    atexit.register(lambda: out.write_text(json.dumps(tr.summary())))
    from engine.cli import main as cli
    return cli(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
