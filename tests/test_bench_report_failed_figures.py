"""Benchmark summary and report: an 'added' latency below zero (the straight line's p99, from its own run,
above the proxy's) is a failed measurement with its reason, never a figure; policy drops (0x45) are not
counted as errors. Built from a small recorded-shape run: nothing is measured here."""
import copy

import pytest

from benchmarks.__main__ import summarise
from benchmarks.report import write_report



def _run(offered, p99, errors=0, statuses=None, cpu="proxy"):
    lat = {"p50": p99 / 2, "p99": p99, "p99.9": p99 * 2}
    return {"offered": offered, "mode": "closed" if offered is None else "open", "generated": 1000, "sent": 1000,
            "ran_out_of_messages": False, "ok": 1000 - errors, "errors": errors, "error_statuses": statuses or {},
            "unanswered": 0, "unexpected": 0, "wall_s": 2.0, "achieved": 500.0, "latency_us": lat, "sojourn_us": lat,
            "cpu_s": {cpu: 0.1, "responder": 0.05}, "generator_cpu_s": 0.1, "series": []}


@pytest.fixture
def res():
    """A small SMPP-only run, shaped as benchmarks/smpp_bench.py records one."""
    step = {"offered": 7700, "half_saturation": True, "direct": _run(7700, 158.0, cpu="responder"),
            "forwarder": _run(7700, 215.0, cpu="forwarder"), "proxy": _run(7700, 9070.0, 38, {"0x45": 38})}
    for name in ("forwarder", "proxy"):
        step[f"{name}_added_us"] = {k: step[name]["latency_us"][k] - step["direct"]["latency_us"][k]
                                    for k in step[name]["latency_us"]}
    sat = {"proxy": _run(None, 4882.0, 245, {"0x45": 245}), "forwarder": _run(None, 300.0, cpu="forwarder"),
           "direct": _run(None, 200.0, cpu="responder")}
    smpp = {"binds": 4, "window": 10, "seconds_per_step": 1.5, "dnc_size": 1000, "proxy_local_time": "12:00",
            "saturation": sat, "proxy_cpu_us_per_msg": 100.0, "forwarder_cpu_us_per_msg": 20.0,
            "responder_cpu_us_per_msg": 10.0, "proxy_growth": None, "steps": [step], "ladder": [7700],
            "half_saturation_rate": 7700, "proxy_gc": None,
            "accounting": {"sent": 4000, "unanswered": 0, "unexpected": 0, "proxy_judged": 2000, "verdict_lines": 2000,
                           "verdict_sample": None, "throttled": 0}}
    return {"mode": "quick", "started": "20261201T000000Z", "duration_s": 1.0, "step_seconds": {},
            "machine": {"cores": 2, "cpu_model": "x", "python": "3.11", "platform": "linux"}, "smpp": smpp}


def _stall_baseline(res):
    """The straight line's run at half saturation stalled: its p99 130 ms (the probe's run)."""
    res = copy.deepcopy(res)
    for r in res["smpp"]["steps"]:
        if r["half_saturation"]:
            r["direct"]["latency_us"]["p99"] = 130_000.0
            for name in ("proxy", "forwarder"):
                if name in r:
                    r[f"{name}_added_us"]["p99"] = r[name]["latency_us"]["p99"] - 130_000.0
            return res, r
    pytest.skip("no half-saturation step")


def test_a_negative_added_p99_is_a_failed_measurement_not_a_figure(res, tmp_path, monkeypatch):
    monkeypatch.setattr("benchmarks.report._plots", lambda out, res: [])
    res, step = _stall_baseline(res)
    s = summarise(res)
    assert s["smpp_p99_added_us"] is None
    assert "failed" in s["smpp_p99_added_us_failed"] and "130,000.0 µs" in s["smpp_p99_added_us_failed"]
    res["summary"], res["capacity"] = s, {}
    write_report(tmp_path, res)
    md = (tmp_path / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| SMPP p99 added latency at half saturation"))
    assert "failed" in line and "-1" not in line.split("|")[2], line
    row = next(ln for ln in md.splitlines() if ln.startswith(f"| {step['offered']:,} (½ sat.)"))
    assert "failed†" in row and "-" not in row.replace("–", ""), row
    assert "† failed (noisy) measurement" in md


def test_policy_drops_are_not_errors(res, tmp_path, monkeypatch):
    monkeypatch.setattr("benchmarks.report._plots", lambda out, res: [])
    res = copy.deepcopy(res)
    sat = res["smpp"]["saturation"]["proxy"]
    sat["error_statuses"] = {"0x45": 1000, "0x58": 3}
    sat["errors"] = 1003
    res["summary"], res["capacity"] = summarise(res), {}
    write_report(tmp_path, res)
    md = (tmp_path / "report.md").read_text()
    assert "| policy drops | errors (statuses) |" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| proxy |"))
    assert row.endswith("| 1,000 | 3 {'0x58': 3} |"), row


def test_report_has_the_shared_state_step_whose_figures_summary_json_holds(res, tmp_path):
    # the state step's figures were in summary.json only: report.md, "every table", had no word of them
    res = copy.deepcopy(res)
    one = {"answered": 6000, "errors": 0, "msgs_per_s": 6563, "cpu_us_per_msg_serve": 136.7,
           "cpu_us_per_msg_total": 136.7}
    red = {**one, "cpu_us_per_msg_serve": 153.3, "cpu_us_per_msg_redis": 23.3, "redis_batches_per_msg": 0.032}
    res["state"] = {"redis_version": "7.0.15", "n": 6000, "binds": 4, "window": 10, "smpp_embedded": one,
                    "smpp_redis_1": red, "smpp_redis_workers2": {**red, "cpu_us_per_msg_serve": 306.7},
                    "memory_per_key_bytes": {"keys": 50000, "redis_keys": 50000, "redis": 165.5, "embedded": 25.4},
                    "dnc_replication_ms": {"n": 50, "p50": 2.93, "p99": 9.41, "max": 91.06, "includes": "fsyncs"}}
    res["summary"] = summarise(res)
    write_report(tmp_path, res)
    text = (tmp_path / "report.md").read_text()
    assert "Shared state" in text
    for figure in ("136.7", "153.3", "306.7", "23.3", "0.032", "165.5 B in Redis", "p99 9.41 ms"):
        assert figure in text, figure
