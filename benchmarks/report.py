"""report.md and PNG plots for a benchmark run."""
from __future__ import annotations

from pathlib import Path


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
        ax2.plot(ns, [r["lookup_us"] for r in l["roaring"]], "^-", color="gray", label="lookup µs")
        ax2.set_ylabel("lookup µs (incl. Python call)")
        ax1.legend(loc="upper left"); ax2.legend(loc="lower right")
        ax1.set_title("DNC memory and lookup cost against list size"); ax1.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(out / "lists_scaling.png", dpi=110); plt.close(fig)
        made.append("lists_scaling.png")
    sm = res.get("smpp")
    if sm:
        wins = sorted({r["window"] for r in sm["steps"]})
        fig, axes = plt.subplots(1, len(wins), figsize=(6 * len(wins), 4), squeeze=False)
        for ax, w in zip(axes[0], wins):
            rows = [r for r in sm["steps"] if r["window"] == w]
            xs = [r["offered"] for r in rows]
            for tgt, style in (("proxy", "-"), ("direct", ":")):
                for q, mk in (("p50", "o"), ("p99", "s"), ("p99.9", "^")):
                    ax.plot(xs, [r[tgt]["latency_us"][q] / 1000 for r in rows], style + mk, label=f"{tgt} {q}")
            ax.set_yscale("log"); ax.set_xlabel("offered submit_sm/s"); ax.set_ylabel("latency ms")
            ax.set_title(f"SMPP latency vs offered load (window {w}, {sm['binds']} binds)")
            ax.grid(alpha=.3); ax.legend(fontsize=7)
        fig.tight_layout(); fig.savefig(out / "smpp_latency.png", dpi=110); plt.close(fig)
        made.append("smpp_latency.png")
    sp = res.get("sip")
    if sp and sp.get("steps"):
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [r["offered_cps"] for r in sp["steps"]]
        ax.plot(xs, [r["mixed"]["cps"] for r in sp["steps"]], "o-", label="screen, half blocked")
        ax.plot(xs, [r["allowed"]["cps"] for r in sp["steps"]], "s-", label="screen, all allowed")
        if any(r.get("kamailio") for r in sp["steps"]):
            ax.plot(xs, [r["kamailio"]["cps"] if r.get("kamailio") else None for r in sp["steps"]], "^--", label="Kamailio stateless")
        ax.plot(xs, xs, "k:", alpha=.4, label="offered")
        ax.set_xlabel("offered calls/s"); ax.set_ylabel("completed calls/s"); ax.set_title("SIP calls per second (sipp)")
        ax.legend(); ax.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(out / "sip_cps.png", dpi=110); plt.close(fig)
        made.append("sip_cps.png")
    return made


def _f(v, nd=1):
    return "–" if v is None else (f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}")


def write_report(out: Path, res) -> None:
    plots = _plots(out, res)
    s, m = res["summary"], res["machine"]
    L = [f"# telfilter benchmark report ({res['mode']} run, {res['started']})", "",
         f"Machine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}. Duration {res['duration_s']} s.",
         "Every figure below was measured in this run; read each next to its same-run baseline.", "",
         "## Summary", "", "| figure | value | baseline (same run) | ratio |", "|---|---|---|---|"]
    def row(name, v, b=None, unit="", better="higher"):
        ratio = "–"
        if v is not None and b:
            ratio = f"{v / b:.2f}×"
        L.append(f"| {name} | {_f(v)} {unit} | {_f(b)} {unit if b is not None else ''} | {ratio} |")
    row("pipeline verdicts/s, one core", s["pipeline_msgs_per_s"])
    row("pipeline p99 per verdict", s["pipeline_p99_us"], None, "µs")
    row("ML µs per 160-char message (ours vs scikit-learn predict_proba)", s["ml_us_per_msg"], s["ml_sklearn_us_per_msg"], "µs")
    row("SMPP submit_sm/s through the proxy (vs straight to the simulator)", s["smpp_tps"], s["smpp_baseline_tps"], "/s")
    row(f"SMPP p99 added latency at ~half load ({_f(s.get('smpp_p99_added_at_offered'))}/s offered)", s["smpp_p99_added_us"], None, "µs")
    row("SIP calls/s through the screen, half blocked (vs Kamailio stateless)", s["sip_cps"], s["sip_baseline_cps"], "/s")
    row("DNC 10M numbers: RSS", s["dnc_10m_rss_mb"], None, "MB")
    row("DNC 10M numbers: load time", s["dnc_10m_load_s"], None, "s")
    if s.get("dnc_100m_rss_mb") is not None:
        row("DNC 100M numbers: RSS", s["dnc_100m_rss_mb"], None, "MB")
        row("DNC 100M numbers: load time", s["dnc_100m_load_s"], None, "s")
    p = res.get("pipeline")
    if p:
        L += ["", "## 1. Pipeline in process", "",
              f"{p['n']:,} generated messages, DNC of {p['dnc_size']:,} numbers (S; half of them also V).", "",
              "| stage | p50 µs | p99 µs | p99.9 µs | mean µs |", "|---|---|---|---|---|"]
        for k, v in p["stages_us"].items():
            L.append(f"| {k} | {_f(v['p50'])} | {_f(v['p99'])} | {_f(v['p99.9'])} | {_f(v['mean'])} |")
        L += ["", f"ML baseline: scikit-learn's own single-message predict_proba of the same model: "
                  f"{_f(p['ml_sklearn_us_per_msg'])} µs (ours on 160-char texts: {_f(p['ml_us_per_msg_160'])} µs).", "",
              "### 5. The traffic mix (seeded generator)", "", "| class | share | verdicts |", "|---|---|---|"]
        for k, share in p["mix_shares"].items():
            L.append(f"| {k} | {share:.0%} | {', '.join(f'{a} {n}' for a, n in sorted(p['verdicts_by_mix'].get(k, {}).items()))} |")
        L += ["", "p2p = person-to-person from plain numbers; ad = registered QC brandname (20% sent at night, "
                  "30% to DNC numbers); spam = known spam texts from plain numbers; phish = links to a blacklisted domain; "
                  "cskh = bank OTP/balance from a CSKH brandname; mo = 5656 commands; ucs2_long = Vietnamese UCS2 texts "
                  "longer than one SMS (one template: SHARED_TEMPLATE tags it once many senders use it, as it should)."]
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
    sm = res.get("smpp")
    if sm:
        L += ["", "## 3. SMPP", "", f"Open-loop asyncio generator, {sm['binds']} binds, {sm['seconds_per_step']} s per step; "
              "latency from each message's scheduled send time to its submit_sm_resp.", "",
              "| window | offered/s | direct achieved | proxy achieved | proxy errors | p50 added µs | p99 added µs | p99.9 added µs | proxy CPU s | simulator CPU s |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sm["steps"]:
            a = r["added_us"]
            L.append(f"| {r['window']} | {r['offered']:,} | {_f(r['direct']['achieved'])} | {_f(r['proxy']['achieved'])} | "
                     f"{r['proxy']['errors'] + r['proxy']['unanswered']} | {_f(a['p50'])} | {_f(a['p99'])} | {_f(a['p99.9'])} | "
                     f"{_f(r['proxy']['cpu_s']['proxy'], 2)} | {_f(r['proxy']['cpu_s']['simulator'], 2)} |")
    sp = res.get("sip")
    if sp and sp.get("steps"):
        L += ["", "## 4. SIP", "", "sipp UAC(s) -> screen -> sipp UAS on loopback; INVITE-to-200 time from sipp (1 ms resolution).",
              f"Kamailio: {'`' + sp['kamailio'] + '`' if sp.get('kamailio') else 'not installed in this run (quick runs do not install it): no baseline'}.", "",
              "| offered CPS | mixed: completed CPS | mixed failed | allowed-only CPS | INVITE→200 p99 ms | screen CPU s | Kamailio CPS |",
              "|---|---|---|---|---|---|---|"]
        for r in sp["steps"]:
            k = r.get("kamailio")
            L.append(f"| {r['offered_cps']:,} | {_f(r['mixed']['cps'])} | {r['mixed']['failed']} | {_f(r['allowed']['cps'])} | "
                     f"{_f(r['allowed']['invite_to_200_ms']['p99'])} | {_f(r['mixed']['server_cpu_s'], 2)} | {_f(k['cps']) if k else '–'} |")
    c = res.get("capacity", {})
    L += ["", "## Capacity model", "", "Assumptions:", ""] + [f"- {a}" for a in c.get("assumptions", [])] + [""]
    if c.get("sms"):
        L += [f"Per core: about {c['sms_per_core']:,} submit_sm/s.", "", "| SMS/s | cores |", "|---|---|"]
        L += [f"| {r['sms_per_s']:,} | {r['cores']} |" for r in c["sms"]]
    if c.get("calls"):
        L += ["", f"Per core: about {c['cps_per_core']:,} calls/s.", "", "| calls/s | cores |", "|---|---|"]
        L += [f"| {r['cps']:,} | {r['cores']} |" for r in c["calls"]]
    L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    (out / "report.md").write_text("\n".join(L) + "\n", encoding="utf-8")
