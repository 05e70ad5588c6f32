"""`serve --metrics-listen`: Prometheus /metrics counts every verdict, /healthz, /readyz and /livez."""
import socket
import subprocess
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import ROOT
from .test_serve import free_port, submit, wait_for


def _get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _samples(text, name):
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def by_table(metrics, name) -> dict:
    """A scrape of `metrics` (engine.metrics.Metrics): the gauge family `name` as {table label: value}."""
    from prometheus_client import generate_latest
    text = generate_latest(metrics.registry).decode()
    return {s.labels["table"]: s.value for s in _samples(text, name)}


def test_metrics_health_and_readiness(tmp_path):
    data = tmp_path / "data"
    from engine.lists import ListStore
    ListStore(data).add("blacklist", "84901234567")
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    smpp_port, mport = free_port(), free_port()
    ready = tmp_path / "ready"
    err = open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data,
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                          "--metrics-listen", f"127.0.0.1:{mport}", "--ready-file", ready],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(ready.exists), (tmp_path / "stderr.log").read_text()
        assert _get(mport, "/readyz")[0] == 200
        assert wait_for(lambda: _get(mport, "/healthz")[0] == 200)
        statuses = [submit(smpp_port, "hello there") for _ in range(5)]      # blacklisted sender: dropped
        assert statuses == [0x0A] * 5
        code, text = _get(mport, "/metrics")
        assert code == 200
        v = {s.labels["action"]: s.value for s in _samples(text, "telfilter_verdicts_total") if s.labels["channel"] == "sms"}
        assert sum(v.values()) == 5 and v.get("drop") == 5
        hits = {s.labels["symbol"]: s.value for s in _samples(text, "telfilter_hits_total")}
        assert hits["SENDER_BLACKLISTED"] == 5
        assert _samples(text, "telfilter_judge_seconds_count")[0].value == 5
        assert {s.labels["account"]: s.value for s in _samples(text, "telfilter_smpp_binds")}["t"] == 0
        assert _samples(text, "telfilter_state_store_write_errors_total")[0].value == 0
        assert [s.value for s in _samples(text, "telfilter_smpp_upstream_bound")] == [1]
        assert {s.labels["writer"]: s.value for s in _samples(text, "telfilter_durable_writes_waiting")} == \
            {"shortcode": 0, "held_receipts": 0, "shortcode_parts": 0, "scheduled_ads": 0}
        assert _samples(text, "telfilter_list_entries")
        assert _samples(text, "telfilter_rules_generation")[0].value == 1
        assert _get(mport, "/nope")[0] == 404
        # a junk or never-finished request does not disturb the endpoint
        s = socket.create_connection(("127.0.0.1", mport))
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"a" * 20000)
        junk = socket.create_connection(("127.0.0.1", mport))
        junk.sendall(b"\x00\xff garbage\r\n\r\n")
        assert _get(mport, "/healthz")[0] == 200
        s.close()
        junk.close()
        sim.stop()                                   # the SMSC goes away: not healthy, still ready
        sim = None
        assert wait_for(lambda: _get(mport, "/healthz")[0] == 503, timeout=10)
        assert _get(mport, "/readyz")[0] == 200
        assert _get(mport, "/livez") == (200, "alive\n")        # a liveness probe does not restart it for that
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        if sim is not None:
            sim.stop()
    assert p.returncode == 0


def test_bad_metrics_listen_is_a_config_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data", "--sip-listen", "off",
                        "--smpp-listen", "127.0.0.1:0", "--metrics-listen", "nowhere"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--metrics-listen 'nowhere'" in p.stderr and "Traceback" not in p.stderr


def test_counter_keys_taken_over_at_max_keys_are_counted_and_exported(tmp_path):
    """A cap table at max_keys takes over the least recently touched key (its count starts again):
    that is counted per namespace and shown as telfilter_state_evicted_keys."""
    from prometheus_client import generate_latest

    from engine.metrics import Metrics
    from engine.rules.counters import MemoryCounters
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    pipe.state.counters = c = MemoryCounters(max_keys=100)
    ns = "AD_FREQUENCY_CAP|owner+recipient|24h|None"
    for i in range(150):
        c.add(ns, ("o:shop", 84912000000 + i), 1_790_000_000 + i, 86400.0, 3)
    assert c.evicted()[ns] == 50
    text = generate_latest(Metrics(pipe).registry).decode()
    assert {s.labels["namespace"]: s.value for s in _samples(text, "telfilter_state_evicted_keys_total")} == {ns: 50}


def test_one_peer_cannot_hold_every_metrics_slot(tmp_path):
    import asyncio

    from engine.metrics import MAX_PER_PEER, Metrics
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)

    async def main():
        m = Metrics(pipe)
        await m.start("127.0.0.1:0")
        idle = [await asyncio.open_connection("127.0.0.1", m.port) for _ in range(MAX_PER_PEER)]
        await asyncio.sleep(0.05)
        r, w = await asyncio.open_connection("127.0.0.1", m.port)
        extra = await asyncio.wait_for(r.read(), 2)            # closed at once, not held
        r0, w0 = idle[0]
        w0.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(r0.read(), 5)
        for _, wr in idle:
            wr.close()
        w.close()
        await m.stop()
        return extra, answer
    extra, answer = asyncio.run(main())
    assert extra == b"" and answer.startswith(b"HTTP/1.1 ")


def test_an_smsc_link_that_is_down_reads_0_not_absent(tmp_path):
    """A configured SMSC whose link is down (not in proxy.links while it reconnects) must still be a
    telfilter_smpp_upstream_bound sample, 0: an alert on `== 0` or `sum(...) < 1` sees nothing when the series
    vanishes (found by an operations probe: the family was empty while the SMSC refused binds)."""
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from engine.metrics import Metrics
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    link = SimpleNamespace(addr=("127.0.0.1", 2775), kind="transceiver", bound=True, window=SimpleNamespace(pending={}))
    proxy = SimpleNamespace(settings=SimpleNamespace(smsc=["127.0.0.1:2775", "127.0.0.1:2776"]), links=[link],
                            stats={}, accounts={}, binds={})
    m = Metrics(pipe, proxy=proxy)

    def bound():
        text = generate_latest(m.registry).decode()
        return {(s.labels["smsc"], s.labels["kind"]): s.value for s in _samples(text, "telfilter_smpp_upstream_bound")}
    # 2776 never bound: 0 from the first scrape
    assert bound() == {("127.0.0.1:2775", "transceiver"): 1, ("127.0.0.1:2776", "transceiver"): 0}
    proxy.links = []                            # 2775's link lost, reconnecting
    assert bound() == {("127.0.0.1:2775", "transceiver"): 0, ("127.0.0.1:2776", "transceiver"): 0}
    # an SMSC used through transmitter + receiver links: each kind it had reads 0 while down, not a guess
    proxy.links = [SimpleNamespace(addr=("127.0.0.1", 2776), kind=k, bound=True, window=SimpleNamespace(pending={}))
                   for k in ("transmitter", "receiver")]
    assert bound() == {("127.0.0.1:2775", "transceiver"): 0, ("127.0.0.1:2776", "transmitter"): 1,
                       ("127.0.0.1:2776", "receiver"): 1}
    proxy.links = []
    assert bound() == {("127.0.0.1:2775", "transceiver"): 0, ("127.0.0.1:2776", "transmitter"): 0,
                       ("127.0.0.1:2776", "receiver"): 0}


def test_two_links_to_one_smsc_are_one_series(tmp_path):
    """An SMSC listed twice (two binds to it, which serve accepts) gave two samples with the same labels: a
    Prometheus server refuses that whole scrape (duplicate series). One sample: bound if either is, the
    windows added."""
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from engine.metrics import Metrics
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    links = [SimpleNamespace(addr=("127.0.0.1", 2775), kind="transceiver", bound=b, window=SimpleNamespace(pending=w))
             for b, w in ((True, {1: 0, 2: 0}), (False, {3: 0}))]
    proxy = SimpleNamespace(settings=SimpleNamespace(smsc=["127.0.0.1:2775"] * 2), links=links,
                            stats={}, accounts={}, binds={})
    text = generate_latest(Metrics(pipe, proxy=proxy).registry).decode()
    assert [s.value for s in _samples(text, "telfilter_smpp_upstream_bound")] == [1]
    assert [s.value for s in _samples(text, "telfilter_smpp_upstream_window")] == [3]


def test_the_proxys_growing_tables_are_exported(tmp_path):
    """A soak (benchmarks/soak.py) must tell the message-id map filling to its 2M bound, as designed, from a leak:
    RSS alone cannot. The tables that grow with traffic are gauges, read at scrape time."""
    from engine.metrics import Metrics
    h = ProxyHarness(build(data_dir=tmp_path, with_model=False, persist=False), accounts=("t:pw",),
                     receipt_delay=None).start()
    try:
        m = Metrics(h.pipeline, proxy=h.proxy)

        def tables():
            return by_table(m, "telfilter_smpp_table_entries")
        assert tables()["message_ids"] == 0
        assert [submit(h.port, "hello there") for _ in range(3)] == [0, 0, 0]
        assert wait_for(lambda: tables()["sessions"] == 0)      # each bind unbound and closed
        t = tables()
        assert t["message_ids"] == 3                            # one per forwarded message
        assert set(t) == {"sessions", "message_ids", "held_receipts", "early_receipts", "receipts_after_resp",
                          "concat_pending", "concat_judged", "mo_concat_pending", "scheduled_ads",
                          "bind_failures"}
        assert t["held_receipts"] == t["concat_pending"] == t["bind_failures"] == 0
    finally:
        h.stop()


def test_the_process_and_build_are_exported(tmp_path):
    """Found by the ops probe (stop 47): /metrics had no process_* metrics (RSS, CPU, open files, start time) nor the
    version running, which a NOC's dashboards and alerts read for every process."""
    from prometheus_client import generate_latest

    from engine import __version__
    from engine.metrics import Metrics
    text = generate_latest(Metrics(build(data_dir=tmp_path, with_model=False, persist=False)).registry).decode()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "process_start_time_seconds"):
        assert _samples(text, name) and _samples(text, name)[0].value > 0, name
    assert _samples(text, "telfilter_build_info")[0].labels["version"] == __version__
    assert _samples(text, "python_info")


def test_dnc_replication_is_exported(tmp_path):
    """DNC replication's counters (published, applied, errors, skipped_older …) were kept but never shown: an operator
    could not see a node that stopped applying other nodes' registrations, nor what waits for Redis."""
    from prometheus_client import generate_latest

    from engine.metrics import Metrics
    from engine.state.replication import DncReplicator

    from .redis_state_helpers import _Down
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    pipe.replicator = rep = DncReplicator("redis://127.0.0.1:1/0", pipe, client=_Down(), reader=_Down())
    rep.stats["applied_remote"] = 7
    rep.stats["skipped_older"] = 2
    rep._segment(True).put("add", "S", 84912000001, 1.0)
    rep.out_reports.append("{}")
    text = generate_latest(Metrics(pipe).registry).decode()
    got = {s.labels["event"]: s.value for s in _samples(text, "telfilter_dnc_replication_total")}
    assert got["applied_remote"] == 7 and got["skipped_older"] == 2 and got["errors"] == 0
    assert "delay_ms_last" not in got
    assert _samples(text, "telfilter_dnc_replication_pending")[0].value == 2


def test_an_sms_answered_unjudged_is_a_refuse_verdict_counted_by_its_status(tmp_path):
    """The proxy's refusal lines (write_refusal: answered an error without a verdict) are verdicts of action refuse,
    and counted by the command_status answered, as the SIP screen's are by their code (test_sip_refusals_metrics)."""
    from datetime import datetime, timezone

    from prometheus_client import generate_latest

    from engine.metrics import MeteredVerdictLog, Metrics
    m = Metrics(build(data_dir=tmp_path, with_model=False, persist=False))
    vlog = MeteredVerdictLog(tmp_path / "v.jsonl", None, m)
    now = datetime.now(timezone.utc)
    for status in (0x58, 0x58, 0x08):                   # ESME_RTHROTTLED twice, ESME_RSYSERR
        vlog.write_refusal(now, "submit_sm", "t", "84901234567", "84912345678", status, "why")
    vlog.close()
    text = generate_latest(m.registry).decode()
    assert {(s.labels["channel"], s.labels["action"]): s.value for s in _samples(text, "telfilter_verdicts_total")} \
        == {("sms", "refuse"): 3}
    assert {(s.labels["channel"], s.labels["status"]): s.value for s in _samples(text, "telfilter_refusals_total")} \
        == {("sms", "88"): 2, ("sms", "8"): 1}
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 3


def test_every_blacklist_kind_has_its_size_exported(tmp_path):
    """Found by the ops walkthrough: telfilter_list_entries had blacklist_numbers and blacklist_domains but no IP
    ranges, which `ctl stats` and `lists stats` count (`ip_ranges`): an `ip`/`cidr` list emptied by a bad import
    showed nothing on a dashboard."""
    from prometheus_client import generate_latest

    from engine.lists import ListStore
    from engine.metrics import Metrics
    ListStore(tmp_path).import_csv("blacklist", b"kind,value\ncidr,10.0.0.0/8\nip,192.0.2.7\ndomain,a.example\n")
    text = generate_latest(Metrics(build(data_dir=tmp_path, with_model=False, persist=False, seed=False))
                           .registry).decode()
    sizes = {s.labels["list"]: s.value for s in _samples(text, "telfilter_list_entries")}
    assert sizes["blacklist_ip_ranges"] == 2 and sizes["blacklist_domains"] == 1


def test_the_rules_reload_errors_help_says_a_good_reload_clears_it(tmp_path):
    """Its HELP said 'errors of the last refused rules reload', which a good reload does not change; the gauge reads 0
    once one succeeds (README, Operating it), so an alert on it clears: the HELP an operator reads says so."""
    from prometheus_client import generate_latest

    from engine.metrics import Metrics
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    pipe.rule_errors = ["rules/x.toml:1:1: unknown key 'symbl'"]
    text = generate_latest(Metrics(pipe).registry).decode()
    (fam,) = [f for f in text_string_to_metric_families(text) if f.name == "telfilter_rules_reload_errors"]
    assert fam.samples[0].value == 1
    assert fam.documentation == "errors that refused the last rules reload (0 once one succeeds)"
