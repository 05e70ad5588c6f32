"""Operator and analyst trip-ups found by probing the CLI as an ops engineer would (each test failed before
its fix): output piped into `head`, a configured model path with no model, `ctl ACTION --socket`, a lists
reload that fell back to an older snapshot, `ml train --out` over the served model, `ml eval`/`ml compare`
judging with other thresholds than serve, the promote advice, an empty `--changes` CSV, floods of bad lines."""
import asyncio
import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from engine.cli import main, parser
from engine.ml.model import default_model_dir

from .conftest import CONFIG, ROOT, run_cli

BUNDLED = default_model_dir()


def _config(tmp_path, **ml):
    """A copy of the shipped config with [ml] keys set."""
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    p = d / "telfilter.toml"
    text = p.read_text()
    for k, v in ml.items():
        text = text.replace("[ml]\n", f"[ml]\n{k} = {json.dumps(v)}\n", 1)
    p.write_text(text.replace('\nmodel = ""', "\n#model = \"\"") if "model" in ml else text)
    return d


def _labelled(tmp_path, n=8):
    p = tmp_path / "data.tsv"
    rows = ["label\ttext"]
    for i in range(n):
        rows.append(f"spam\tWIN a FREE prize now, text CLAIM to 8{i}086 before midnight")
        rows.append(f"ham\tsee you at the station at {i} o'clock, bring the umbrella please")
    p.write_text("\n".join(rows) + "\n")
    return p


# ------------------------------------------------------------------ telfilter ... | head
def test_output_piped_into_head_is_not_an_error(tmp_path):
    """`telfilter lists export dnc | head -1`: the reader closing the pipe is not a failure (it printed
    `telfilter: error: Broken pipe`, exit 2: the BrokenPipeError clause sat after the OSError one)."""
    csv_path = tmp_path / "dnc.csv"
    csv_path.write_text("number,channel\n" + "".join(f"0912{i:06d},S\n" for i in range(60000)))
    run_cli("lists", "import", "dnc", csv_path, "--data-dir", tmp_path / "d", check=True)
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "lists", "export", "dnc", "--data-dir", tmp_path / "d"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b"number,channel")
    p.stdout.close()                       # what `head -1` does
    err = p.stderr.read().decode()
    assert p.wait(60) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception ignored" not in err


# ------------------------------------------------------------------ a configured model that is not there
def test_check_with_a_configured_model_path_that_holds_no_model_is_an_error_not_a_traceback(tmp_path, capsys):
    cfg = _config(tmp_path, model=str(tmp_path / "live" / "model"))
    rc = main(["check", "--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--sender", "0901234567",
               "--recipient", "0912345678", "--text", "hello"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "not a model directory" in err and str(tmp_path / "live" / "model") in err


def test_promote_advice_does_not_send_the_operator_into_a_failed_restart(tmp_path):
    """With [ml] model unset, promote said "set it ... and restart serve once"; a serve restarted with a
    model path that holds no model refuses to start. No restart is needed: a reload re-reads [ml]."""
    r = run_cli("ml", "promote", BUNDLED, "--data-dir", tmp_path)
    assert r.returncode == 2 and "[ml] model is not set" in r.stderr
    assert "restart serve once" not in r.stderr
    assert "run this command again" in r.stderr and "no restart needed" in r.stderr


# ------------------------------------------------------------------ ctl flags after the action
def test_ctl_socket_and_timeout_are_accepted_after_the_action_too():
    for argv in (["ctl", "stats", "--socket", "/x.sock", "--timeout", "5"],
                 ["ctl", "--socket", "/x.sock", "--timeout", "5", "stats"],
                 ["ctl", "reload", "rules", "--socket", "/x.sock", "--timeout", "5"],
                 ["ctl", "drain", "--socket", "/x.sock", "--timeout", "5"],
                 ["ctl", "lists", "add", "dnc", "0912345678", "--socket", "/x.sock", "--timeout", "5"],
                 ["ctl", "lists", "remove", "dnc", "0912345678", "--socket", "/x.sock", "--timeout", "5"]):
        a = parser().parse_args(argv)
        assert (a.socket, a.timeout) == ("/x.sock", 5.0), argv
    a = parser().parse_args(["ctl", "stats"])
    assert (a.socket, a.timeout) == (None, 60.0)
    with pytest.raises(SystemExit):
        parser().parse_args(["ctl", "stats", "--timeout", "0"])


def test_ctl_stats_socket_after_the_action_reaches_the_socket_named(tmp_path):
    r = run_cli("ctl", "stats", "--socket", tmp_path / "none.sock", "--data-dir", tmp_path)
    assert r.returncode == 2 and "none.sock" in r.stderr, r.stderr
    assert "unrecognized arguments" not in r.stderr


# ------------------------------------------------------------------ ctl reload lists: an older snapshot in force
def test_ctl_reload_lists_says_when_a_corrupt_snapshot_left_an_older_generation_in_force(tmp_path, capsys):
    from engine.app import build
    from engine.control_reload import ReloadCommands
    d = tmp_path / "d"
    for dom in ("one.example", "two.example"):
        assert main(["lists", "add", "blacklist", dom, "--data-dir", str(d)]) == 0
    capsys.readouterr()
    snap = d / "lists" / "blacklist.snap"
    b = bytearray(snap.read_bytes())
    b[len(b) // 2] ^= 0xFF
    snap.write_bytes(bytes(b))

    class Ctl(ReloadCommands):
        pass
    c = Ctl()
    c.pipe = build(None, d, with_model=False, seed=False)
    ans = asyncio.run(c._reload_lists())
    assert ans["ok"] is True                    # the previous generation is in force
    assert ans.get("warnings"), ans             # ... and the answer says so, not only the service log
    assert any("blacklist.snap" in w and "previous" in w for w in ans["warnings"])


# ------------------------------------------------------------------ ml train --out over what serve loads
def test_ml_train_refuses_to_write_over_the_served_or_bundled_model(tmp_path):
    data = _labelled(tmp_path)
    live = tmp_path / "live" / "model"
    cfg = _config(tmp_path, model=str(live))
    before = {p.name: p.stat().st_mtime_ns for p in BUNDLED.iterdir()}
    r = run_cli("ml", "train", "--data", data, "--out", BUNDLED, "--no-progress", "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "bundled model" in r.stderr, r.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in BUNDLED.iterdir()} == before
    r = run_cli("ml", "train", "--data", data, "--out", live, "--no-progress", "--config", cfg, "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "the model serve loads" in r.stderr, r.stderr[-2000:]
    assert not live.exists()
    vd = live.parent / ".model.versions" / "v1"
    vd.mkdir(parents=True)
    r = run_cli("ml", "train", "--data", data, "--out", vd, "--no-progress", "--config", cfg, "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "kept for rollback" in r.stderr, r.stderr[-2000:]
    assert not (vd / "card.json").exists()


# ------------------------------------------------------------------ eval / compare with serve's thresholds
def test_ml_eval_without_model_judges_with_the_thresholds_serve_uses(tmp_path):
    data = _labelled(tmp_path)
    cfg = _config(tmp_path, tag_threshold=0.00001, drop_threshold=0.00002)
    r = run_cli("ml", "eval", "--data", data, "--config", cfg, "--data-dir", tmp_path / "d", check=True)
    m = json.loads(r.stdout)
    assert m["threshold"] == pytest.approx(0.00002) and m["tag_threshold"] == pytest.approx(0.00001)
    assert m["blocked_ham_rate"] == 1.0               # every ham is over a drop threshold that low, as in serve
    assert m["thresholds_overridden"]["drop_threshold"]["telfilter.toml"] == pytest.approx(0.00002)
    # an explicit --model is the model on its own: its card's thresholds
    r = run_cli("ml", "eval", "--model", BUNDLED, "--data", data, "--config", cfg, "--data-dir", tmp_path / "d",
                check=True)
    assert json.loads(r.stdout)["threshold"] > 0.5


def test_ml_compare_against_serve_uses_serves_thresholds_for_both_and_writes_a_header_when_nothing_changes(tmp_path):
    data = _labelled(tmp_path)
    cfg = _config(tmp_path, tag_threshold=0.00001, drop_threshold=0.00002)
    ch = tmp_path / "changes.csv"
    r = run_cli("ml", "compare", "--model", BUNDLED, "--data", data, "--changes", ch, "--no-progress",
                "--config", cfg, "--data-dir", tmp_path / "d", check=True)
    s = json.loads(r.stdout)
    assert [m["drop_threshold"] for m in s["models"]] == [pytest.approx(0.00002)] * 2
    assert s["changed"] == 0 and all(m["actions"]["drop"] == 16 for m in s["models"])
    assert all("thresholds_overridden" in m for m in s["models"])
    rows = list(csv.reader(io.StringIO(ch.read_text())))
    assert rows == [["index", "text", "lang", "kind", "label", "p_1", "action_1", "p_2", "action_2"]]


# ------------------------------------------------------------------ a file of the wrong kind as --data
def test_ml_eval_shows_the_first_thousand_bad_lines_then_a_count(tmp_path):
    data = _labelled(tmp_path)
    bad = tmp_path / "verdicts.jsonl"
    bad.write_text("".join(json.dumps({"ts": "2026-12-01T00:00:00Z", "action": "allow", "n": i}) + "\n"
                           for i in range(1205)))
    r = run_cli("ml", "eval", "--model", BUNDLED, "--data", data, "--data", bad, "--data-dir", tmp_path / "d",
                check=True)
    shown = [l for l in r.stderr.splitlines() if "skipped bad line" in l]
    assert len(shown) == 1000
    assert "205 more bad lines skipped (1205 in all)" in r.stderr


# ------------------------------------------------------------------ demo and --data-dir
def test_demo_says_it_does_not_use_the_data_dir_named(tmp_path):
    d = tmp_path / "named"
    r = run_cli("demo", "--data-dir", d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--data-dir" in r.stderr and "not used" in r.stderr
    assert not d.exists()                  # never seeded, as a directory the user names never is


# ------------------------------------------------------------------ report: usage errors exit 2
def test_report_bad_dates_are_usage_errors(tmp_path):
    log = tmp_path / "v.jsonl"
    log.write_text("")
    r = run_cli("report", "--log", log, "--from", "2026-13-01", "--out", tmp_path / "r", "--no-progress",
                "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "argument --from: must be a date YYYY-MM-DD, got '2026-13-01'" in r.stderr
    r = run_cli("report", "--log", log, "--from", "2026-12-05", "--to", "2026-12-01", "--out", tmp_path / "r",
                "--no-progress", "--data-dir", tmp_path / "d")
    assert r.returncode == 2


def test_ctl_whose_connection_breaks_is_an_error_not_a_quiet_success(tmp_path):
    """serve closes the control connection before it has read the request (EPIPE on our side): exit 2
    with the reason, never the quiet exit 0 meant for `| head`."""
    import socket
    import subprocess
    import sys
    import threading
    path = str(tmp_path / "c.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(5)

    def serve():
        try:
            while True:
                c, _ = srv.accept()
                c.recv(10)
                c.close()                        # gives up on the request
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    try:
        code = ("import sys; from engine.cli import main; "
                "sys.exit(main(['ctl', '--socket', sys.argv[1], 'lists', 'add', 'dnc', '9' * 4_000_000]))")
        r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
    finally:
        srv.close()
    assert r.returncode == 2 and "connection" in r.stderr, (r.returncode, r.stderr[-300:])


def test_a_data_dir_that_does_not_exist_is_said_by_a_command_that_reads_it(tmp_path):
    """First-use review: `--data-dir /tmp/typo check …` or `lists stats` judged or showed empty lists without a
    word. A command that only reads the lists says so now; one that writes (an import) makes it as before."""
    typo = tmp_path / "typo"
    for argv in (["lists", "stats"], ["lists", "export", "dnc"],
                 ["check", "--sender", "SHOPABC", "--recipient", "0912345678", "--text", "hi"]):
        r = run_cli("--data-dir", typo, *argv)
        assert r.returncode == 0 and f"note: --data-dir {typo} does not exist: its lists are empty" in r.stderr, \
            (argv, r.stderr)
    r = run_cli("--data-dir", typo, "lists", "add", "dnc", "0912345678", "--channel", "S")
    assert r.returncode == 0 and "does not exist" not in r.stderr, r.stderr
    r = run_cli("--data-dir", typo, "lists", "stats")
    assert "does not exist" not in r.stderr, r.stderr
