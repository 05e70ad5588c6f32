"""report.md and PNG plots for a benchmark run."""
from __future__ import annotations

from pathlib import Path

# every plot a run can write: one a run did not make (its step skipped or failed) is an earlier run's in the same
# --out directory, and is removed so that the directory holds one run's results only
PLOTS = ("pipeline_stages.png", "lists_scaling.png", "smpp_latency.png", "cpu_over_time.png", "sip_cps.png",
         "sip_cpu.png")


def _plots(out: Path, res) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    made = []
    p = res.get("pipeline")
    if p:
        st = p["stages_us"]
        names = ["normalise", "lists", "rules", "ml", "judge"]
        fig, ax = plt.subplots(figsize=(7, 4))
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [st[n]["p50"] for n in names], 0.4, label="p50")
        ax.bar([i + 0.2 for i in x], [st[n]["p99"] for n in names], 0.4, label="p99")
        ax.set_xticks(list(x), ["normalise", "lists", "rules", "ML", "whole verdict"])
        ax.set_ylabel("µs per message (one core)")
        ax.set_title(f"Cost per pipeline stage ({p['n']:,} messages, DNC {p['dnc_size']:,})")
        ax.legend(); ax.grid(axis="y", alpha=.3)
        fig.tight_layout(); fig.savefig(out / "pipeline_stages.png", dpi=110); plt.close(fig)
        made.append("pipeline_stages.png")
    l = res.get("lists")
    if l and l["roaring"]:
        fig, ax1 = plt.subplots(figsize=(7, 4))
        ns = [r["n"] for r in l["roaring"]]
        ax1.plot(ns, [r["rss_mb"] for r in l["roaring"]], "o-", label="roaring RSS (MB)")
        ax1.plot(ns, [r["snapshot_mb"] for r in l["roaring"]], "s--", label="snapshot (MB)")
        if l["python_set"]:
            ax1.plot([r["n"] for r in l["python_set"]], [r["rss_mb"] for r in l["python_set"]], "x:", label="Python set RSS (MB)")
        ax1.set_xscale("log"); ax1.set_yscale("log"); ax1.set_xlabel("numbers on the DNC list"); ax1.set_ylabel("MB")
        ax2 = ax1.twinx()
        ax2.plot(ns, [r["lookup_us"] for r in l["roaring"]], "^-", color="gray", label="roaring lookup µs")
        if l["python_set"]:
            ax2.plot([r["n"] for r in l["python_set"]], [r["lookup_us"] for r in l["python_set"]], "+:", color="gray",
                     ms=10, label="Python set lookup µs")
        ax2.set_ylabel("lookup µs (incl. Python call)")
        # one legend below the axes: inside, its corner held the Python set's point (the baseline: most MB, fewest
        # numbers)
        (h1, l1), (h2, l2) = ax1.get_legend_handles_labels(), ax2.get_legend_handles_labels()
        ax1.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=8)
        ax1.set_title("DNC memory and lookup cost against list size"); ax1.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(out / "lists_scaling.png", dpi=110); plt.close(fig)
        made.append("lists_scaling.png")
    sm = res.get("smpp")
    if sm and sm.get("steps"):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for tgt, color in (("direct", "gray"), ("forwarder", "tab:green"), ("proxy", "tab:blue")):
            rows = [r for r in sm["steps"] if tgt in r]
            xs = [r["offered"] for r in rows]
            for q, style in (("p50", "o-"), ("p99", "s--")):
                ax.plot(xs, [r[tgt]["latency_us"][q] / 1000 for r in rows], style, color=color, label=f"{tgt} {q}")
        sat = sm["saturation"]
        for tgt, color in (("forwarder", "tab:green"), ("proxy", "tab:blue")):
            ax.axvline(sat[tgt]["achieved"], color=color, alpha=.5, linestyle=":",
                       label=f"{tgt} saturation {sat[tgt]['achieved']:,.0f}/s")
        ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("offered submit_sm/s"); ax.set_ylabel("latency ms (send to resp)")
        ax.set_title(f"SMPP latency vs offered load ({sm['binds']} binds x window {sm['window']}); forwarder = ceiling")
        ax.grid(alpha=.3); ax.legend(fontsize=7)
        fig.tight_layout(); fig.savefig(out / "smpp_latency.png", dpi=110); plt.close(fig)
        made.append("smpp_latency.png")
    lr, g = res.get("longrun"), (sm or {}).get("proxy_growth")
    if lr or g:
        n = (1 if lr else 0) + (1 if g else 0)
        fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 4), squeeze=False)
        i = 0
        if lr:
            ax = axes[0][i]; i += 1
            ax.plot([x["messages"] for x in lr["slices"]], [x["cpu_us_per_msg"] for x in lr["slices"]], "o-", ms=3)
            ax.set_xlabel("messages judged (state accumulating)"); ax.set_ylabel("CPU µs per message")
            ax.set_title(f"In-process judge loop: growth {lr['growth']:.2f}x" if lr["growth"] else "In-process judge loop")
            ax.set_ylim(bottom=0); ax.grid(alpha=.3)
        if g:
            ax = axes[0][i]
            ys = g["per_second_us"]
            ax.plot(range(1, len(ys) + 1), [y if y is not None else float("nan") for y in ys], "o-", ms=3)
            ax.set_xlabel("second of the saturating run"); ax.set_ylabel("proxy CPU µs per submit_sm")
            ax.set_title(f"Proxy, saturating: growth {g['growth']:.2f}x" if g["growth"] else "Proxy, saturating")
            ax.set_ylim(bottom=0); ax.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(out / "cpu_over_time.png", dpi=110); plt.close(fig)
        made.append("cpu_over_time.png")
    sp = res.get("sip")
    if sp and sp.get("steps"):
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [r["offered_cps"] for r in sp["steps"]]
        ax.plot(xs, [r["mixed"]["cps"] for r in sp["steps"]], "o-", label="screen, half blocked")
        ax.plot(xs, [r["allowed"]["cps"] for r in sp["steps"]], "s-", label="screen, all allowed")
        if any(r.get("kamailio") for r in sp["steps"]):
            ax.plot(xs, [r["kamailio"]["cps"] if r.get("kamailio") else None for r in sp["steps"]], "^--", label="Kamailio stateless")
        ax.plot(xs, xs, "k:", marker="_", ms=14, alpha=.4, label="offered")     # (a marker: one rate, as --quick has, is no line)
        ax.set_ylim(0, 1.1 * max(xs))   # from 0: a 0.3% gap between the screen and Kamailio does not fill the plot
        ax.set_xlabel("offered calls/s"); ax.set_ylabel("completed calls/s"); ax.set_title("SIP calls per second (sipp)")
        ax.legend(); ax.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(out / "sip_cps.png", dpi=110); plt.close(fig)
        made.append("sip_cps.png")
        fig, ax = plt.subplots(figsize=(7, 4))
        kinds = [("allowed", "screen"), ("relay", "trivial UDP relay"), ("kamailio", "Kamailio stateless -x tlsf")]
        w = 0.8 / len(kinds)
        for j, (k, label) in enumerate(kinds):
            ys = [(r[k]["cpu_us_per_call"] or 0) if r.get(k) else 0 for r in sp["steps"]]
            if any(ys):
                ax.bar([i + (j - 1) * w for i in range(len(xs))], ys, w, label=label)
        ax.set_xticks(range(len(xs)), [f"{x:,}" for x in xs]); ax.set_xlabel("offered calls/s (all allowed)")
        ax.set_ylabel("CPU µs per call (6 SIP messages)"); ax.set_title("SIP CPU per call, same sipp load, same run")
        ax.legend(); ax.grid(axis="y", alpha=.3)
        fig.tight_layout(); fig.savefig(out / "sip_cpu.png", dpi=110); plt.close(fig)
        made.append("sip_cpu.png")
    return made


# the classes of benchmarks.traffic's mix, which the pipeline stage and the long run both judge
MIX_LEGEND = ("p2p = person-to-person texts from plain numbers (word-bigram chain over the shipped ham, and Vietnamese "
              "clauses); p2p_ucs2 = Vietnamese with diacritics; ad = registered QC brandnames, labelled, with opt-out; "
              "ad_dnc = the same to DNC numbers; cskh = OTP/balance/bill from CSKH brandnames; campaign = spam "
              "templates (names, numbers, amounts varied) each sent from 15-300 plain-number senders, a new campaign "
              "replacing each finished one; phish = links under a blacklisted domain.")


def _f(v, nd=1):
    return "–" if v is None else (f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}")


# what the proxy answers a message its policy drops with (engine/smpp_proxy/server.py: the rule's smpp_status,
# default ESME_RSUBMITFAIL; the shipped rules also use ESME_RINVSRCADR): the filter at work, not an error
POLICY_DROP_STATUSES = {"0x45": "ESME_RSUBMITFAIL", "0x0A": "ESME_RINVSRCADR"}


def _drops_errors(r) -> tuple[int, int, dict]:
    """(policy drops, errors, the errors' statuses) of one load run: its error answers less the drops."""
    st = r["error_statuses"] or {}
    drops = sum(v for k, v in st.items() if k in POLICY_DROP_STATUSES)
    return drops, r["errors"] - drops, {k: v for k, v in st.items() if k not in POLICY_DROP_STATUSES}


def _added(v, nd=1) -> str:
    """An 'added' latency (a difference of two runs' percentiles); below zero it is a failed measurement (†)."""
    return "–" if v is None else ("failed†" if v < 0 else _f(v, nd))


def write_report(out: Path, res) -> None:
    plots = _plots(out, res)
    for name in set(PLOTS) - set(plots):
        (out / name).unlink(missing_ok=True)
    s, m = res["summary"], res["machine"]
    L = [f"# telfilter benchmark report ({res['mode']} run, {res['started']})", "",
         f"Machine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}. Duration {res['duration_s']} s.",
         "Every figure below was measured in this run; read each next to its same-run baseline.",
         "Wall seconds per step (1-min load average when it began): "
         + ", ".join(f"{k} {v:g} s ({res.get('load_average', {}).get(k, float('nan')):.1f})"
                     for k, v in res.get("step_seconds", {}).items()) + ".", ""]
    if res.get("failed_steps"):
        L += ["**Steps that failed: their figures below are – (not measured), not zero.**", ""]
        L += [f"- {k}: {v}" for k, v in res["failed_steps"].items()] + [""]
    L += ["## Summary", "", "| figure | value | baseline (same run) | ratio | target (issues) |", "|---|---|---|---|---|"]

    def row(name, v, b=None, unit="", target="–", nd=1, failed=None):
        ratio = f"{v / b:.2f}×" if v is not None and b else "–"
        value = f"– ({failed})" if v is None and failed else f"{_f(v, nd)} {unit}"
        L.append(f"| {name} | {value} | {_f(b, nd)} {unit if b is not None else ''} | {ratio} | {target} |")
    row("pipeline verdicts/s, one core", s["pipeline_msgs_per_s"], None, "/s")
    row("pipeline p99 per verdict (stage bench)", s["pipeline_p99_us"], None, "µs")
    row("judge p99, in process, long run of the realistic mix (wall)", s.get("judge_p99_us"), None, "µs", "≤ 50 µs")
    row("judge p99, same run, thread CPU time per judge()", s.get("judge_cpu_p99_us"), None, "µs")
    row("person-to-person texts tagged SHARED_TEMPLATE (long run)", s.get("p2p_shared_template_pct"), None, "%", "≤ 0.5%")
    row("campaign messages tagged or dropped (long run, all senders)", s.get("campaign_caught_pct"), None, "%")
    row("ML µs per 160-char message (ours vs scikit-learn predict_proba)", s["ml_us_per_msg"], s["ml_sklearn_us_per_msg"], "µs", "≤ 30 µs")
    row("SMPP proxy CPU per submit_sm, saturating (vs raw forwarder)", s.get("smpp_proxy_cpu_us_per_msg"),
        s.get("smpp_forwarder_cpu_us_per_msg"), "µs", "≤ 100 µs")
    row("SMPP submit_sm/s through the proxy, saturating (vs raw forwarder)", s["smpp_tps"], s["smpp_baseline_tps"], "/s", "≥ 10k/s per core")
    row(f"SMPP p99 added latency at 5k/s offered (the proxy answered {_f(s.get('smpp_proxy_achieved_at_5k'))}/s)",
        s.get("smpp_p99_added_us_at_5k"), None, "µs", "≤ 1,000 µs", failed=s.get("smpp_p99_added_us_at_5k_failed"))
    row(f"SMPP p99 added latency at half saturation ({_f(s.get('smpp_p99_added_at_offered'))}/s offered)",
        s["smpp_p99_added_us"], None, "µs", failed=s.get("smpp_p99_added_us_failed"))
    row(f"cost growth, last/first ({s.get('smpp_cost_growth_source') or '–'})", s.get("smpp_cost_growth"), None, "×", "≤ 1.2×", nd=2)
    row(f"worst GC pause ({s.get('gc_max_pause_source') or '–'})", s.get("gc_max_pause_ms"), None, "ms", "≤ 20 ms")
    row("worst GC pause in the SMPP proxy process", s.get("smpp_proxy_gc_max_pause_ms"), None, "ms")
    row("worst GC pause in the long run, thread CPU (without other tenants' preemptions)",
        s.get("gc_max_pause_cpu_ms"), None, "ms")
    row("worst stall of one judge() in the long run, thread CPU (a collection or a state table growing)",
        s.get("state_max_pause_ms"), None, "ms", "≤ 20 ms")
    row(f"counter bytes per advertiser-recipient key, counted at delivery as the pack's AD_FREQUENCY_CAP is: rows "
        f"with room for 6 stamps ({s.get('counter_bytes_per_key_source') or '–'})",
        s.get("counter_bytes_per_key"), None, "B", "≤ 64 B")
    row(f"event-loop pause of a state snapshot, {_f(s.get('snapshot_table_mb'))} MB of counter tables (forked writer vs "
        f"the copy on the loop)", s.get("snapshot_pause_ms"), s.get("snapshot_pause_copy_ms"), "ms")
    row("recipient-history bytes per new plain-number sender (the tables' memory_bytes)", s.get("history_bytes_per_sender"), None, "B", "≤ 200 B")
    row(f"SIP screen CPU per allowed call at {_f(s.get('sip_cpu_at_cps'))} calls/s (vs Kamailio -x tlsf)",
        s.get("sip_cpu_us_per_call"), s.get("sip_kamailio_cpu_us_per_call"), "µs", "≤ 300 µs")
    row("SIP screen CPU per call (vs trivial UDP relay)", s.get("sip_cpu_us_per_call"), s.get("sip_relay_cpu_us_per_call"), "µs")
    row("SIP screen CPU per SIP message", s.get("sip_cpu_us_per_msg"), None, "µs")
    row("SIP calls/s through the screen, half blocked (vs Kamailio stateless)", s["sip_cps"], s["sip_baseline_cps"], "/s")
    for name, what in (("c_pump", "C pump"), ("python_reader", "Python reader")):
        row(f"SIP: a second caller's calls judged through a flood from another address, {what} (shares on vs off)",
            s.get(f"sip_flood_{name}_pct"), s.get(f"sip_flood_{name}_off_pct"), "%")
    row("DNC 10M numbers: RSS", s["dnc_10m_rss_mb"], None, "MB")
    row("DNC 10M numbers: load time", s["dnc_10m_load_s"], None, "s", nd=2)
    if s.get("dnc_100m_rss_mb") is not None:
        row("DNC 100M numbers: RSS", s["dnc_100m_rss_mb"], None, "MB", "≤ 300 MB")
        row("DNC 100M numbers: load time", s["dnc_100m_load_s"], None, "s", "≤ 2 s")
    p = res.get("pipeline")
    if p:
        L += ["", "## 1. Pipeline in process", "",
              f"{p['n']:,} generated messages, DNC of {p['dnc_size']:,} numbers (S; half of them also V).", "",
              "| stage | p50 µs | p99 µs | p99.9 µs | mean µs |", "|---|---|---|---|---|"]
        for k, v in p["stages_us"].items():
            L.append(f"| {k} | {_f(v['p50'])} | {_f(v['p99'])} | {_f(v['p99.9'])} | {_f(v['mean'])} |")
        L += ["", f"ML baseline: scikit-learn's own single-message predict_proba of the same model: "
                  f"{_f(p['ml_sklearn_us_per_msg'])} µs (ours on 160-char texts: {_f(p['ml_us_per_msg_160'])} µs).", "",
              "### The traffic mix of this stage (benchmarks.traffic)", "", "| class | share | verdicts |", "|---|---|---|"]
        for k, share in p["mix_shares"].items():
            L.append(f"| {k} | {share:.0%} | {', '.join(f'{a} {n}' for a, n in sorted(p['verdicts_by_mix'].get(k, {}).items()))} |")
        L += ["", MIX_LEGEND]
    l = res.get("lists")
    if l:
        L += ["", "## 2. Lists", "", "| structure | numbers | RSS MB | snapshot MB | load s | lookup µs |", "|---|---|---|---|---|---|"]
        for r in l["roaring"]:
            L.append(f"| roaring (S + V) | {r['n']:,} | {_f(r['rss_mb'])} | {_f(r['snapshot_mb'])} | {_f(r['load_s'], 3)} | {_f(r['lookup_us'], 2)} |")
        for r in l["python_set"]:
            L.append(f"| Python set (baseline) | {r['n']:,} | {_f(r['rss_mb'])} | – | {_f(r['build_s'], 3)} (build) | {_f(r['lookup_us'], 2)} |")
    if res.get("counters"):
        c = res["counters"]
        L += ["", f"Counter state of the Decree 91 pack after {c['recipients']:,} distinct recipients (advertiser cap, "
                  f"flood counter, per-sender recipient history): {_f(c['rss_mb'])} MB RSS, {c['keys']:,} keys, "
                  f"{_f(c['us_per_message'], 2)} µs per message to update."]
    lr = res.get("longrun")
    if lr:
        g = lr["gc"]
        L += ["", "## 3. Long run in process (state accumulating)", "",
              f"{lr['n']:,} of {lr['n_target']:,} messages of the realistic mix (stopped by {lr['stopped_by']}; cap "
              f"{lr['seconds_cap']:g} s of judging), traffic time advancing {lr['traffic_rate']:,.0f} messages/s, DNC of "
              f"{lr['dnc_size']:,}. CPU per message: first fifth {_f(lr['first_cpu_us'])} µs, last fifth "
              f"{_f(lr['last_cpu_us'])} µs (growth {_f(lr['growth'], 2)}×). judge() p50 / p99 / p99.9: "
              f"{_f(lr['judge_us'].get('p50'))} / {_f(lr['judge_us'].get('p99'))} / {_f(lr['judge_us'].get('p99.9'))} µs wall, "
              f"{_f(lr['judge_cpu_us'].get('p50'))} / {_f(lr['judge_cpu_us'].get('p99'))} / {_f(lr['judge_cpu_us'].get('p99.9'))} µs "
              "thread CPU (the wall figures also hold other tenants' preemptions on a shared machine). "
              f"Person-to-person texts tagged SHARED_TEMPLATE: {_f(lr['p2p_shared_template_pct'], 2)}% (tagged or dropped "
              f"for any reason: {_f(lr['p2p_tagged_or_dropped_pct'], 2)}%); campaign messages tagged or dropped: "
              f"{_f(lr['campaign_caught_pct'])}%. "
              f"RSS grew {_f(lr['rss_growth_mb'])} MB.", "",
              "| GC generation | collections | worst pause ms | total ms |", "|---|---|---|---|"]
        L += [f"| {k} | {g[k]['count']:,} | {_f(g[k]['max_ms'], 2)} | {_f(g[k]['total_ms'])} |" for k in ("gen0", "gen1", "gen2")]
        L += ["", "| class | share | verdicts | most frequent hits |", "|---|---|---|---|"]
        from .traffic import SHARES
        for k, share in SHARES.items():
            v = lr["verdicts_by_mix"].get(k, {})
            h = lr["hits_by_mix"].get(k, {})
            L.append(f"| {k} | {share:.0%} | {', '.join(f'{a} {n:,}' for a, n in sorted(v.items()))} | "
                     f"{', '.join(f'{a} {n:,}' for a, n in h.items()) or '–'} |")
        L += ["", MIX_LEGEND]
    ck = res.get("counter_keys")
    if ck:
        L += ["", f"Counter state per advertiser-recipient key (AD_FREQUENCY_CAP, {ck['keys']:,} keys, one message each): "
                  f"{_f(ck['tracemalloc_bytes_per_key'])} B retained (tracemalloc)"
                  + (f", {_f(ck['memory_bytes_per_key'])} B by the store's memory_bytes()" if "memory_bytes_per_key" in ck else "")
                  + f"; recipient history per new plain-number sender: {_f(ck.get('history_bytes_per_sender'))} B."]
    sm = res.get("smpp")
    if sm and sm.get("steps") is not None:
        sat, acc = sm["saturation"], sm["accounting"]
        L += ["", "## 4. SMPP", "",
              f"Load generator in its own process, {sm['binds']} binds × window {sm['window']}, realistic mix; every "
              "process on loopback and measured separately (CPU µs per submit_sm = that process's CPU time / submit_sm "
              "answered). Saturation = closed loop, every window kept full; the proxy's run comes first, on a fresh "
              f"process. The proxy judges by its own clock: it was {sm.get('proxy_local_time', '?')} in Asia/Ho_Chi_Minh "
              "(outside 07:00-22:00 every advertisement is dropped AD_OUTSIDE_HOURS, which changes the verdict mix).", "",
              "| closed loop | seconds | submit_sm/s | CPU µs per submit_sm | responder CPU µs | generator CPU µs | p50 / p99 ms | policy drops | errors (statuses) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for name in ("proxy", "forwarder", "direct"):
            r = sat[name]
            n = max(1, r["ok"] + r["errors"])
            own = r["cpu_s"].get(name if name != "direct" else "responder")
            drops, errors, statuses = _drops_errors(r)
            L.append(f"| {name} | {_f(r['wall_s'])} | {_f(r['achieved'])} | {_f(own / n * 1e6) if name != 'direct' else '–'} | "
                     f"{_f(r['cpu_s']['responder'] / n * 1e6)} | {_f(r['generator_cpu_s'] / n * 1e6)} | "
                     f"{_f(r['latency_us']['p50'] / 1000, 2)} / {_f(r['latency_us']['p99'] / 1000, 2)} | "
                     f"{drops:,} | {errors} {statuses or ''} |")
        if sat["proxy"].get("ran_out_of_messages"):
            L += ["", f"The proxy's saturating run used up its {sat['proxy']['generated']:,} generated messages before "
                      "its time was up (it is faster than the run's cap): raise `smpp_sat_rate_cap`."]
        pg = sm.get("proxy_gc")
        if pg:
            L += ["", "GC pauses in the proxy process over all SMPP steps: "
                      + ", ".join(f"{k} {pg[k]['count']:,} collections, worst {_f(pg[k]['max_ms'], 2)} ms"
                                  for k in ("gen0", "gen1", "gen2")) + "."]
        g = sm.get("proxy_growth")
        if g:
            L += ["", f"Proxy CPU per submit_sm over the saturating run: first {g['edge_s']:.1f} s {_f(g['first_us'])} µs, "
                      f"last {g['edge_s']:.1f} s {_f(g['last_us'])} µs (growth {_f(g['growth'], 2)}×)."]
        L += ["", "Open loop (latency from each submit_sm's write to its submit_sm_resp; 'added' = minus the straight "
                  "line at the same rate in the same run; sojourn = from the scheduled send time, so a full window counts):", "",
              "| offered/s | direct achieved | forwarder achieved | proxy achieved | proxy p50 / p99 / p99.9 added µs | forwarder p99 added µs | proxy sojourn p99 ms | proxy CPU µs/msg | proxy policy drops | proxy errors |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        failed = False
        for r in sm["steps"]:
            pa, fa = r.get("proxy_added_us"), r.get("forwarder_added_us")
            pr = r.get("proxy")
            mark = " (½ sat.)" if r["half_saturation"] else ""
            L.append(f"| {r['offered']:,}{mark} | {_f(r['direct']['achieved']) if 'direct' in r else '–'} | "
                     f"{_f(r['forwarder']['achieved']) if 'forwarder' in r else '–'} | {_f(pr['achieved']) if pr else '–'} | "
                     + (f"{_added(pa['p50'])} / {_added(pa['p99'])} / {_added(pa['p99.9'])}" if pa else "–") + " | "
                     + (f"{_added(fa['p99'])}" if fa else "–") + " | "
                     + (f"{_f(pr['sojourn_us']['p99'] / 1000, 2)} | {_f(pr['cpu_s']['proxy'] / max(1, pr['ok'] + pr['errors']) * 1e6)} | "
                        f"{_drops_errors(pr)[0]:,} | {_drops_errors(pr)[1] + pr['unanswered']} |" if pr else "– | – | – | – |"))
            failed |= any(v is not None and v < 0 for a in (pa, fa) if a for v in a.values())
        if failed:
            L += ["", "† failed (noisy) measurement: an 'added' figure is the element's percentile minus the straight "
                      "line's, each from its own run at that rate; the straight line's run stalled (its percentile "
                      "above the element's), so the difference is below zero, which no hop can add. Rerun the benchmark."]
        L += ["", f"Accounting over every SMPP run: {acc['sent']:,} submit_sm sent, {acc['unanswered']} unanswered, "
                  f"{acc['unexpected']} answered more than once or unasked; the proxy judged {acc['proxy_judged']:,} "
                  f"(answered minus {acc['throttled']} throttled; policy drops, answered "
                  f"{' or '.join(POLICY_DROP_STATUSES)}, are judged too) and wrote {acc['verdict_lines']:,} verdict lines."]
        vs = acc.get("verdict_sample")
        if vs and vs["lines"]:
            L += ["", f"What the proxy decided (first {vs['lines']:,} verdict lines): "
                      + ", ".join(f"{a} {n:,}" for a, n in sorted(vs["actions"].items())) + "; hits: "
                      + ", ".join(f"{k} {n:,}" for k, n in sorted(vs["symbols"].items(), key=lambda kv: -kv[1])[:8])
                      + (f"; {vs['unparsed']:,} lines not parsed" if vs["unparsed"] else "") + "."]
    sp = res.get("sip")
    if sp and sp.get("steps"):
        L += ["", "## 5. SIP", "", "sipp UAC(s) -> element -> sipp UAS on loopback, 6 SIP messages per allowed call; "
              "INVITE-to-200 time from sipp (1 ms resolution); CPU from /proc (10 ms ticks: short runs are coarse).",
              f"Kamailio: {'`' + sp['kamailio'] + ' ' + ' '.join(sp.get('kamailio_args') or []) + '`, stateless forward()' if sp.get('kamailio') else 'not installed in this run (the full run installs it): no Kamailio baseline'}.", "",
              "| offered CPS | mixed: CPS (failed) | allowed: CPS (failed) | INVITE→200 p99 ms | screen CPU µs/call | µs/msg | relay CPU µs/call | Kamailio CPS (failed) | Kamailio CPU µs/call |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in sp["steps"]:
            k, rl, al = r.get("kamailio"), r.get("relay"), r["allowed"]
            L.append(f"| {r['offered_cps']:,} | {_f(r['mixed']['cps'])} ({r['mixed']['failed']}) | {_f(al['cps'])} ({al['failed']}) | "
                     f"{_f(al['invite_to_200_ms']['p99'])} | {_f(al.get('cpu_us_per_call'))} | {_f(al.get('cpu_us_per_msg'))} | "
                     f"{_f(rl.get('cpu_us_per_call')) if rl else '–'} | {(_f(k['cps']) + ' (' + str(k['failed']) + ')') if k else r.get('kamailio_error', '–')} | "
                     f"{_f(k.get('cpu_us_per_call')) if k else '–'} |")
    st = res.get("state")
    if st and not st.get("skipped"):
        sets = [("smpp_embedded", "embedded, 1 process (same-run baseline)"),
                ("smpp_redis_1", "`--state redis://`, 1 process"),
                ("smpp_redis_workers2", "`--workers 2 --state redis://`")]
        L += ["", "## 6. Shared state (benchmarks.state_bench)", "",
              f"Closed loop, {st.get('binds')} binds × window {st.get('window')}, {st.get('n', 0):,} submit_sm of the "
              f"mix per set-up, the three set-ups in this run; redis-server {st.get('redis_version')} on loopback.", "",
              "| figure | " + " | ".join(t for _k, t in sets) + " |", "|---|---|---|---|"]
        for key, name in (("cpu_us_per_msg_serve", "serve CPU per submit_sm (µs)"),
                          ("cpu_us_per_msg_redis", "redis-server CPU per submit_sm (µs)"),
                          ("redis_batches_per_msg", "batch script calls per submit_sm"),
                          ("msgs_per_s", "achieved submit_sm/s")):
            nd = 3 if key == "redis_batches_per_msg" else 1
            L.append(f"| {name} | " + " | ".join(_f((st.get(k) or {}).get(key), nd) for k, _t in sets) + " |")
        m, d = st.get("memory_per_key_bytes") or {}, st.get("dnc_replication_ms") or {}
        L += ["", f"Memory per advertiser–recipient key, a plain count of 3 stamps ({_f(m.get('keys'), 0)} keys; the "
                  f"summary's counter bytes per key is a count at delivery, rows with room for 6): "
                  f"{_f(m.get('redis'))} B in Redis, {_f(m.get('embedded'))} B in the embedded tables. DNC change node "
                  f"A -> node B: p50 "
                  f"{_f(d.get('p50'), 2)} ms, p99 {_f(d.get('p99'), 2)} ms, max {_f(d.get('max'), 2)} ms "
                  f"({d.get('includes', '')})."]
    c = res.get("capacity", {})
    L += ["", "## Capacity model", "", "Assumptions:", ""] + [f"- {a}" for a in c.get("assumptions", [])] + [""]
    if c.get("sms"):
        b = c.get("sms_baseline")
        base = (f"; same-run baseline: {b['what']} {_f(b['cpu_us_per_msg'])} µs per submit_sm ({b['ratio']:.2f}×)"
                if b else "; no same-run baseline (the SMPP forwarder not measured)")
        L += [f"Per core: about {c['sms_per_core']:,} submit_sm/s ({_f(c.get('sms_cpu_us_per_msg'))} µs per submit_sm, "
              f"from {c.get('sms_cpu_source', '–')}{base}).", "", "| SMS/s | cores |", "|---|---|"]
        L += [f"| {r['sms_per_s']:,} | {r['cores']} |" for r in c["sms"]]
    if c.get("calls"):
        bs = c.get("cps_baselines") or []
        base = ("; same-run baselines: " + ", ".join(f"{b['what']} {_f(b['cpu_us_per_call'])} µs ({b['ratio']:.2f}×)"
                                                    for b in bs)) if bs else "; no same-run baseline measured"
        L += ["", f"Per core: about {c['cps_per_core']:,} calls/s ({_f(c.get('cps_cpu_us_per_call'))} µs per call at "
                  f"{_f(c.get('cps_cpu_at'), 0)} calls/s{base}).", "", "| calls/s | cores |", "|---|---|"]
        L += [f"| {r['cps']:,} | {r['cores']} |" for r in c["calls"]]
    if c.get("mixed"):
        L += ["", "SMS and calls together (each role its own processes; `python -m benchmarks.capacity "
                  "RESULTS_DIR --sms N --cps M` for any other load):", "", "| SMS/s | calls/s | cores |", "|---|---|---|"]
        L += [f"| {r['sms_per_s']:,} | {r['cps']:,} | {r['cores']} |" for r in c["mixed"]]
    L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    (out / "report.md").write_text("\n".join(L) + "\n", encoding="utf-8")
