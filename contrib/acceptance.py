"""An independent check of an installed telfilter, as a carrier's ops engineer would run it
(issue 14's "Done when"): run it with the Python of the install, from any directory,

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install .        # no extras
    cd /tmp && /tmp/tfvenv/bin/python /path/to/contrib/acceptance.py

It drives the `telfilter` console script next to that Python (not the source tree) and uses
only what the install brings: smpplib as the ESME, prometheus_client's parser for /metrics,
and the package's SMSC simulator as the upstream. Everything listens on 127.0.0.1, in a
temporary directory, and is stopped at the end. Each check prints PASS or FAIL with what it
saw; the exit status is the number of failures.

Checks: --version; --help on every subcommand; config check (0 on the shipped config, the
file:line of an unknown key in telfilter.toml and of a syntax error in smpp.toml); serve with
-v (ISO-8601 timestamped service lines); /healthz 200 while bound to the SMSC; /metrics parsed
by prometheus_client, telfilter_verdicts_total{channel="sms"} summing to the SMS sent and the
drops counted as the ESME saw them; 20 submits in flight at SIGTERM all answered, an unbind
received, exit 0 within 10 s; `ml train` without the [train] extra names the extra.
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent / "telfilter"
RESULTS: list[tuple[bool, str, str]] = []


def check(ok: bool, what: str, saw: str = "") -> bool:
    RESULTS.append((bool(ok), what, saw))
    print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"\n      {saw}" if saw and not ok else ""), flush=True)
    return bool(ok)


def tf(*args, timeout=120, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---------------------------------------------------------------------- the SMSC
class Smsc:
    """The package's SMSC simulator on its own event loop in a thread."""

    def __init__(self):
        from engine.smpp_proxy.simulator import SmscSimulator
        self.loop = asyncio.new_event_loop()
        self.sim = SmscSimulator(receipt_delay=None)
        self.loop.run_until_complete(self.sim.start())
        self.port = self.sim.port
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def set_answer_delay(self, seconds: float) -> None:
        self.loop.call_soon_threadsafe(setattr, self.sim, "answer_delay", seconds)

    def bound(self) -> bool:
        return any(s.bound for s in list(self.sim.sessions))

    def unbinds(self) -> int:
        return sum(1 for _, p in list(self.sim.received) if type(p).__name__ == "Unbind")

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop)
        try:
            fut.result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# ---------------------------------------------------------------------- the checks
def check_cli(work: Path) -> None:
    r = tf("--version")
    check(r.returncode == 0 and re.match(r"telfilter \d+\.\d+", r.stdout), "telfilter --version", r.stdout + r.stderr)
    from engine.cli import parser
    import argparse
    missing, walked = [], 0

    def walk(p, path):
        nonlocal walked
        walked += 1
        if not (p.description or "").strip():
            missing.append(" ".join(path) + " (no description)")
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, path + [name])
            elif not (a.help or "").strip():
                missing.append(" ".join(path + [a.option_strings[0] if a.option_strings else a.dest]))
    walk(parser(), ["telfilter"])
    check(not missing, f"help text on every subcommand and flag ({walked} parsers)", ", ".join(missing))
    bad = [cmd for cmd in (["serve"], ["ctl", "reload"], ["config", "check"], ["ml", "train"], ["lists", "import"])
           if tf(*cmd, "--help").returncode != 0]
    check(not bad, "--help runs on serve, ctl reload, config check, ml train, lists import", str(bad))

    r = tf("config", "check")
    check(r.returncode == 0 and "smpp.toml: OK" in r.stdout, "config check: exit 0 on the shipped config",
          r.stdout + r.stderr)
    shipped = Path(tf("config", "check").stdout.split(":", 1)[0]).parent
    cfg = work / "config"
    shutil.copytree(shipped, cfg)
    (cfg / "telfilter.toml").write_text(re.sub(r"(?m)^\[engine\]$", '[engine]\ntimezon = "UTC"',
                                               (cfg / "telfilter.toml").read_text(), count=1))
    line = next(i for i, t in enumerate((cfg / "telfilter.toml").read_text().splitlines(), 1) if t.startswith("timezon "))
    r = tf("config", "check", cfg)
    check(r.returncode != 0 and f"telfilter.toml:{line}:" in r.stderr and "did you mean 'timezone'" in r.stderr,
          f"config check: unknown key named as telfilter.toml:{line}", r.stderr)
    shutil.rmtree(cfg)
    shutil.copytree(shipped, cfg)
    smpp = (cfg / "smpp.toml").read_text().splitlines()
    n = next(i for i, t in enumerate(smpp) if t.startswith("[upstream]"))
    smpp[n] = "[upstream"
    (cfg / "smpp.toml").write_text("\n".join(smpp) + "\n")
    r = tf("config", "check", cfg)
    check(r.returncode != 0 and f"smpp.toml:{n + 1}:" in r.stderr and "Traceback" not in r.stderr,
          f"config check: syntax error named as smpp.toml:{n + 1}", r.stderr)

    data = work / "train.tsv"
    data.write_text("".join(f"{'spam' if i % 2 else 'ham'}\tmessage number {i} text\n" for i in range(40)))
    r = tf("ml", "train", "--data", data, "--out", work / "model")
    if importlib.util.find_spec("sklearn") is None:
        check(r.returncode != 0 and "telfilter[train]" in r.stderr and "Traceback" not in r.stderr,
              "ml train without the [train] extra says which extra to install", r.stderr)
    else:
        print("SKIP  ml train without [train]: scikit-learn is installed here")
    mods = [m for m in ("sklearn", "scipy", "matplotlib") if importlib.util.find_spec(m) is not None]
    print(f"info  training stack in this install: {mods or 'none'}")


def _client(port: int):
    import smpplib.client
    c = smpplib.client.Client("127.0.0.1", port, timeout=15)
    c.connect()
    c.bind_transceiver(system_id="acc1", password="secret1")
    return c


def _send(c, sender: str, recipient: str, text: str) -> None:
    import smpplib.gsm
    parts, enc, esm = smpplib.gsm.make_parts(text)
    c.send_message(source_addr_ton=5 if not sender.isdigit() else 1, source_addr=sender, dest_addr_ton=1,
                   destination_addr=recipient, short_message=parts[0], data_coding=enc, esm_class=esm)


def _read_resps(c, n: int) -> tuple[list[int], list[str]]:
    statuses, others = [], []
    while len(statuses) < n:
        pdu = c.read_pdu()
        if pdu.command == "submit_sm_resp":
            statuses.append(pdu.status)
        else:
            others.append(pdu.command)
            if pdu.command == "unbind":
                from smpplib import command
                c.send_pdu(command.UnbindResp(sequence=pdu.sequence, client=c))
    return statuses, others


def check_serve(work: Path, smsc_stalls: bool = False) -> None:
    """smsc_stalls: the SMSC never answers the submits in flight at SIGTERM (they get the
    retryable-or-unknown answer at the drain deadline) instead of answering 3 s late."""
    from prometheus_client.parser import text_string_to_metric_families
    work = work / ("stalled" if smsc_stalls else "slow")
    work.mkdir()
    smsc = Smsc()
    data = work / "data"
    accounts = work / "esme-accounts"
    accounts.write_text("# SYSTEM_ID:PASSWORD\nacc1:secret1\n")
    accounts.chmod(0o600)
    port, mport = free_port(), free_port()
    ready, err = work / "ready", open(work / "serve.stderr", "w")
    t0 = time.monotonic()
    p = subprocess.Popen([str(BIN), "serve", "-v", "--data-dir", data, "--smpp-listen", f"127.0.0.1:{port}",
                          "--smsc", f"127.0.0.1:{smsc.port}", "--esme-accounts-file", accounts, "--sip-listen", "off",
                          "--metrics-listen", f"127.0.0.1:{mport}", "--log", work / "verdicts.jsonl",
                          "--ready-file", ready], stderr=err, stdout=subprocess.DEVNULL, cwd=work)
    try:
        if not check(wait_for(ready.exists, 60), "serve starts", (work / "serve.stderr").read_text()):
            return
        print(f"info  serve ready in {time.monotonic() - t0:.1f}s")
        base = f"http://127.0.0.1:{mport}"
        wait_for(smsc.bound)
        ok_h = wait_for(lambda: http_get(base + "/healthz")[0] == 200)
        check(ok_h, "/healthz 200 while bound to the SMSC", str(http_get(base + "/healthz")))
        check(http_get(base + "/readyz")[0] == 200, "/readyz 200 once listening")

        c = _client(port)
        clean = [("84901234%03d" % i, "849120%05d" % i, f"Hen gap ban luc {i % 12 + 1} gio chieu nhe") for i in range(20)]
        spam = [("SHOPABC", "849130%05d" % i, "[QC] Uu dai lon cuoi tuan giam 50%") for i in range(10)]
        for s, r, t in clean + spam:
            _send(c, s, r, t)
        statuses, _ = _read_resps(c, len(clean) + len(spam))
        sent, refused = len(statuses), sum(1 for s in statuses if s != 0)
        status, text = http_get(base + "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        check(status == 200 and "telfilter_verdicts" in fams, "/metrics parsed by prometheus_client",
              f"{status} {sorted(fams)[:10]}")
        samples = [s for s in fams["telfilter_verdicts"].samples if s.name == "telfilter_verdicts_total"]
        sms = {s.labels["action"]: s.value for s in samples if s.labels.get("channel") == "sms"}
        check(sum(sms.values()) == sent, f"telfilter_verdicts_total{{channel=\"sms\"}} sums to the {sent} SMS sent",
              str(sms))
        check(sms.get("drop", 0) == refused and refused >= len(spam),
              f"drops counted: {sms.get('drop', 0)} in /metrics, {refused} refused submits seen by the ESME", str(sms))

        # graceful stop: 20 submits held by a slow (or stalled) SMSC, then SIGTERM
        if smsc_stalls:
            smsc.loop.call_soon_threadsafe(setattr, smsc.sim, "stall", True)
        else:
            smsc.set_answer_delay(3.0)
        time.sleep(0.2)
        for i in range(20):
            _send(c, "84901234999", "849140%05d" % i, f"Hen gap lai vao thu {i % 7 + 2} nhe ban")
        time.sleep(1.0)                                  # judged and forwarded: in flight at the SMSC
        t_stop = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            statuses, others = _read_resps(c, 20)
        except Exception as e:                          # the connection closed before every answer
            statuses, others = [], [f"{e.__class__.__name__}: {e}"]
        how = "stalled SMSC" if smsc_stalls else "SMSC answering 3 s late"
        check(len(statuses) == 20, f"{how}: 20 submits in flight at SIGTERM all answered "
              f"(statuses {sorted(set(statuses))})", f"{len(statuses)} answered; also {others}")
        try:
            while "unbind" not in others:
                others.append(c.read_pdu().command)
        except Exception:
            pass
        check("unbind" in others, "the ESME received an unbind", str(others))
        try:
            rc = p.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t_stop
        check(rc == 0 and took <= 10.0, f"{how}: serve exited {rc} {took:.1f}s after SIGTERM (0 within 10 s)",
              "\n      ".join((work / "serve.stderr").read_text().splitlines()[-6:]))
        drained = [line for line in (work / "serve.stderr").read_text().splitlines() if "drained:" in line]
        check(drained and re.search(r"drained: 20 requests in flight", drained[0]),
              "the drain saw the 20 submits in flight at the SMSC", str(drained))
        check(smsc.unbinds() >= 1, "serve unbound from the SMSC", str(smsc.unbinds()))
        log = (work / "serve.stderr").read_text()
        stamped = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (INFO|WARNING|ERROR|DEBUG) telfilter")
        lines = [line for line in log.splitlines() if line.strip()]
        check(lines and all(stamped.match(line) for line in lines if not line.startswith((" ", "Traceback"))),
              f"-v service log: every one of {len(lines)} lines ISO-8601 timestamped with level and logger",
              "\n".join(line for line in lines if not stamped.match(line))[:800])
        check(any(" INFO " in line for line in lines), "-v shows INFO lines", log[:400])
        check("Traceback" not in log, "no traceback in the service log", log[-800:])
        try:
            c.disconnect()
        except Exception:
            pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        err.close()
        smsc.stop()


def main() -> int:
    if not BIN.exists():
        print(f"no telfilter console script beside {sys.executable}: install telfilter into this Python first")
        return 2
    import engine
    src = Path(engine.__file__).resolve()
    print(f"info  telfilter from {src.parent} ({BIN})")
    if Path.cwd() in src.parents:
        print("WARN  run this from outside the source tree: it would check the checkout, not the install")
    with tempfile.TemporaryDirectory(prefix="tf-accept-") as d:
        work = Path(d)
        os.environ.pop("TELFILTER_DATA_DIR", None)
        check_cli(work)
        check_serve(work)
        check_serve(work, smsc_stalls=True)
    failed = sum(1 for ok, _, _ in RESULTS if not ok)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    if sys.argv[1:]:
        print(f"usage: {sys.argv[0]} [--help]   (no arguments: runs every check)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
