"""Output paths of the wrong kind are refused before the work, named as given, and nothing half-written is left
behind (found by the CLI audit: `ml train --out FILE` trained, then stopped on 'File exists'; `reports export
--out DIR` and `ml compare --changes DIR` named their temporary file and left it beside DIR; `ml cv --json`
was written in place after the splits had run)."""
import errno
import json
import os
import shutil

import pytest

from engine.analyst import export
from engine.ml.model import default_model_dir

from .conftest import run_cli
from .test_ops_cli_edges import _labelled

BUNDLED = default_model_dir()



def _named(argv) -> str:
    """The command argv runs, as its errors name it (`telfilter lists import: error: …`)."""
    return " ".join(argv[:1 if argv[0] in ("check", "report", "serve") else 2])

def _store(d):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "reports.jsonl", "w") as f:
        for i in range(3):
            f.write(json.dumps({"reporter": f"8491200{i:04d}", "reported": "84987654321", "kind": "S",
                                "content": "Ban da trung thuong 50.000.000d, nhan thuong tai http://bit.ly/abc",
                                "time": f"2026-11-30T10:{i:02d}:00+07:00", "label": None}) + "\n")
    return d / "reports.jsonl"


def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_ml_train_out_naming_a_file_is_refused_before_training(tmp_path):
    out = tmp_path / "model.txt"
    out.write_text("not a model directory\n")
    p = run_cli("ml", "train", "--data", _labelled(tmp_path), "--out", out, "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    assert f"--out {out}: not a directory" in p.stderr
    assert "training on" not in p.stderr          # refused before the work, not after it
    assert out.read_text() == "not a model directory\n"


@pytest.mark.parametrize("argv", [
    ("report", "--log", "{log}", "--no-progress", "--out", "{out}"),
    ("ml", "eval", "--model", str(BUNDLED), "--data", "{data}", "--report", "{out}"),
    ("ml", "cv", "--data", "{data}", "--splits", "1", "--no-progress", "--report", "{out}"),
])
def test_an_output_directory_that_is_a_file_is_named_as_such(tmp_path, argv):
    out = tmp_path / "taken"
    out.write_text("x\n")
    log = tmp_path / "verdicts.jsonl"
    log.write_text("")
    args = [a.format(log=log, out=out, data=_labelled(tmp_path)) for a in argv]
    p = run_cli(*args, "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    flag = args[args.index(str(out)) - 1]
    assert p.stderr.strip().splitlines()[-1] == (f"telfilter {_named(argv)}: error: {flag} {out}: not a "
                                                 "directory (it names the directory the command writes its files into)")
    assert "File exists" not in p.stderr and "Traceback" not in p.stderr


def test_reports_export_out_naming_a_directory_names_it_and_leaves_no_temporary_file(tmp_path):
    store = _store(tmp_path / "d")
    out = tmp_path / "out"
    out.mkdir()
    p = run_cli("reports", "export", "--out", out, "--reports", store, "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    assert f"--out {out}: is a directory" in p.stderr and ".tmp" not in p.stderr
    assert _leftovers(tmp_path) == []


def test_ml_compare_changes_naming_a_directory_is_refused_before_the_models_run(tmp_path):
    out = tmp_path / "changes"
    out.mkdir()
    p = run_cli("ml", "compare", "--model", BUNDLED, "--model", BUNDLED, "--data", _labelled(tmp_path),
                "--changes", out, "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    assert f"--changes {out}: is a directory" in p.stderr and ".tmp" not in p.stderr
    assert p.stdout == "" and _leftovers(tmp_path) == []


def test_ml_cv_json_is_written_whole_and_never_over_an_input(tmp_path):
    data = _labelled(tmp_path)
    out = tmp_path / "new" / "cv.json"                  # a directory not there yet, as reports export makes it
    p = run_cli("ml", "cv", "--data", data, "--splits", "1", "--no-progress", "--json", out)
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["splits"] == 1
    before = data.read_text()
    p = run_cli("ml", "cv", "--data", data, "--splits", "1", "--no-progress", "--json", data)
    assert p.returncode == 2 and f"--json {data}: that is {data}" in p.stderr, p.stderr
    assert data.read_text() == before


def test_check_out_naming_its_own_input_is_refused_and_the_input_kept(tmp_path):
    """`check --jsonl IN --out IN` replaced the corpus with its verdicts (exit 0); a link to it is the same file."""
    corpus = tmp_path / "msgs.jsonl"
    corpus.write_text(json.dumps({"id": "m1", "kind": "sms", "sender": "0901234567", "recipient": "0912345678",
                                  "text": "hi", "time": "2026-11-28T10:00:00+07:00"}) + "\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(corpus)
    before = corpus.read_text()
    for out in (corpus, link):
        p = run_cli("check", "--jsonl", corpus, "--out", out, "--data-dir", tmp_path / "d")
        assert p.returncode == 2, p.stderr
        assert f"--out {out}: that is {corpus}, which this command only reads" in p.stderr, p.stderr
        assert corpus.read_text() == before and p.stdout == ""
    out = tmp_path / "verdicts.jsonl"
    p = run_cli("check", "--jsonl", corpus, "--out", out, "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["id"] == "m1"
    # a device is written to, never replaced: `--jsonl /dev/stdin --out /dev/stdout` on a terminal is one tty
    p = run_cli("check", "--jsonl", "/dev/null", "--out", "/dev/null", "--data-dir", tmp_path / "d")
    assert p.returncode == 0 and "which this command only reads" not in p.stderr, p.stderr


def test_write_atomic_leaves_nothing_behind_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "export.tsv"
    target.write_text("the old export\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(export.os, "fsync", full)
    with pytest.raises(OSError):
        export.write_atomic(target, "the new export\n")
    assert target.read_text() == "the old export\n"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ("lists", "stats"),
    ("lists", "import", "dnc", "{csv}"),
    ("check", "--sender", "A", "--recipient", "0912345678", "--text", "hi"),
    ("reports", "list"),
    ("ctl", "stats"),
])
def test_a_data_dir_that_is_a_file_is_named_as_such(tmp_path, argv):
    """It was 'FILE/lists/dnc.delta: Not a directory', 'FILE/reports.jsonl: …', a path inside it per command."""
    f = tmp_path / "data.csv"
    f.write_text("number,channel\n0912345678,S\n")
    args = [a.format(csv=f) for a in argv]
    p = run_cli(*args, "--data-dir", f)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1] == (f"telfilter {_named(argv)}: error: --data-dir {f}: not a "
                                                 "directory (the data dir holds lists/, reports.jsonl, models/)")
    p = run_cli(*args, env={"TELFILTER_DATA_DIR": str(f)})
    assert p.returncode == 2 and f"$TELFILTER_DATA_DIR {f}: not a directory" in p.stderr, p.stderr


@pytest.mark.parametrize("argv", [
    ("lists", "stats"),
    ("check", "--sender", "A", "--recipient", "0912345678", "--text", "hi"),
    ("reports", "list"),
    ("ctl", "stats"),
    ("serve", "--control-socket", "off", "--sip-listen", "off", "--smpp-listen", "127.0.0.1:0"),
])
def test_a_data_dir_under_a_file_is_named_as_such(tmp_path, argv):
    """It was 'FILE/data/lists/dnc.delta: Not a directory', 'FILE/data/reports.jsonl: …', a path inside it per command."""
    f = tmp_path / "afile"
    f.write_text("")
    p = run_cli(*argv, "--data-dir", f / "data", timeout=60)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1] == (f"telfilter {_named(argv)}: error: --data-dir {f / 'data'}: cannot "
                                                 f"be made: {f} is not a directory")


@pytest.mark.parametrize("argv", [("serve", "--control-socket", "off"), ("check", "--sender", "A", "--recipient",
                                  "0912345678", "--text", "hi"), ("lists", "stats"), ("config", "check")])
def test_a_config_dir_that_is_no_directory_is_named_with_its_flag(tmp_path, argv):
    """It was `telfilter: error: FILE: is a file: name the directory holding …`, the flag that named it not said."""
    f = tmp_path / "telfilter.toml"
    f.write_text("")
    for path, why in ((f, "is a file: name the directory holding telfilter.toml, smpp.toml, sip.toml and rules/"),
                      (tmp_path / "nope", "config directory does not exist")):
        p = run_cli(*argv, "--config", path, "--data-dir", tmp_path / "d")
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().splitlines()[-1] == f"telfilter {_named(argv)}: error: --config {path}: {why}"


@pytest.mark.parametrize("argv", [("serve", "--control-socket", "off"), ("check", "--sender", "A", "--recipient",
                                  "0912345678", "--text", "hi"), ("rules", "check"), ("config", "check")])
def test_a_rules_dir_given_as_config_says_to_name_the_dir_above(tmp_path, argv):
    """`--config CFG/rules`, the directory just edited, said `CFG/rules/rules:1:1: rules directory does not exist`
    (serve: the same, as its start error), which names a directory nobody wrote and not the flag to change."""
    from .conftest import CONFIG
    rules = tmp_path / "cfg" / "rules"
    shutil.copytree(CONFIG / "rules", rules)
    p = run_cli(*argv, "--config", rules, "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        f"telfilter {_named(argv)}: error: --config {rules}: holds rule files (*.toml) but no telfilter.toml or "
        f"rules/: a rules directory? name the config directory above it ({tmp_path / 'cfg'})"), p.stderr


@pytest.mark.parametrize("argv", [("check", "--jsonl", "{corpus}"), ("lists", "export", "dnc")])
def test_check_and_lists_export_out_as_the_other_outputs(tmp_path, argv):
    """`check --out DIR` and `lists export --out DIR` said `DIR: Is a directory`, the flag not named, where every
    other output says `--out DIR: is a directory (name the file to write)` (found by the README audit)."""
    corpus = tmp_path / "msgs.jsonl"
    corpus.write_text(json.dumps({"id": "m1", "kind": "sms", "sender": "0901234567", "recipient": "5656",
                                  "text": "DK DNC", "time": "2026-11-28T10:00:00+07:00"}) + "\n")
    args = [a.format(corpus=corpus) for a in argv]
    taken = tmp_path / "taken"
    taken.mkdir()
    p = run_cli(*args, "--out", taken, "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1] == \
        f"telfilter {_named(argv)}: error: --out {taken}: is a directory (name the file to write)"
    assert not (tmp_path / "d").exists()             # refused before the work: the DK DNC was not applied
    out = tmp_path / "out.txt"
    p = run_cli(*args, "--out", out, "--data-dir", tmp_path / "d")
    assert p.returncode == 0 and out.read_text(), p.stderr
