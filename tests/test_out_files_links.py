"""Output files written whole by a rename (`check --out`, `lists export --out` through commands._Out; `reports
export --out`, `ml compare --changes`, `ml cv --json`, the TUI's e key through export.write_atomic): the temporary
file `.NAME.PID.tmp` is created, never opened through a symbolic link planted at that name (the data went into the
file the link named, truncated first, and the link was then renamed over the output); and an output that is a link
is handled alike by both: the file it names is replaced, the link kept (_Out replaced the link with a plain file,
write_atomic wrote the file it names)."""
import json
import os

import pytest

from engine.analyst.export import write_atomic
from engine.commands import _Out

from .conftest import run_cli


def _via_out(path, text):
    with _Out(str(path)) as f:
        f.write(text)


@pytest.mark.parametrize("write", [_via_out, write_atomic], ids=["_Out", "write_atomic"])
def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path, write):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "verdicts.jsonl"
    (tmp_path / f".verdicts.jsonl.{os.getpid()}.tmp").symlink_to(victim)
    write(out, "new\n")
    assert victim.read_text() == "keep me"
    assert out.read_text() == "new\n" and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdicts.jsonl", "victim"]


@pytest.mark.parametrize("write", [_via_out, write_atomic], ids=["_Out", "write_atomic"])
def test_an_output_that_is_a_link_replaces_the_file_it_names_and_keeps_the_link(tmp_path, write):
    shared = tmp_path / "team" / "zone.txt"
    shared.parent.mkdir()
    shared.write_text("old\n")
    link = tmp_path / "zone.txt"
    link.symlink_to(shared)
    write(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(shared)
    assert shared.read_text() == "new\n"
    assert [p.name for p in shared.parent.iterdir()] == ["zone.txt"]      # renamed in its own directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team", "zone.txt"]


def test_check_out_through_a_link_writes_the_file_it_names(tmp_path):
    corpus = tmp_path / "msgs.jsonl"
    corpus.write_text(json.dumps({"id": "m1", "kind": "sms", "sender": "0901234567", "recipient": "0912345678",
                                  "text": "hi", "time": "2026-11-28T10:00:00+07:00"}) + "\n")
    shared = tmp_path / "shared" / "verdicts.jsonl"
    shared.parent.mkdir()
    shared.write_text("an earlier run\n")
    link = tmp_path / "verdicts.jsonl"
    link.symlink_to(shared)
    p = run_cli("check", "--jsonl", corpus, "--out", link, "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    assert link.is_symlink() and json.loads(shared.read_text())["id"] == "m1"


@pytest.mark.parametrize("write", [_via_out, write_atomic], ids=["_Out", "write_atomic"])
def test_a_dangling_link_is_written_through_when_its_targets_directory_exists(tmp_path, write):
    (tmp_path / "shared").mkdir()
    link = tmp_path / "out.jsonl"
    link.symlink_to(tmp_path / "shared" / "new.jsonl")
    write(link, "new\n")
    assert link.is_symlink() and (tmp_path / "shared" / "new.jsonl").read_text() == "new\n"


@pytest.mark.parametrize("write", [_via_out, write_atomic], ids=["_Out", "write_atomic"])
def test_a_dangling_link_into_a_missing_directory_is_refused_and_nothing_made(tmp_path, write):
    # make_parent made the directories along the link's target (a typo in a link grew a tree where it pointed)
    link = tmp_path / "out.jsonl"
    link.symlink_to(tmp_path / "nowhere" / "sub" / "out.jsonl")
    with pytest.raises(FileNotFoundError, match="symbolic link to .*nowhere/sub/out.jsonl, whose directory does not"):
        write(link, "new\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"] and link.is_symlink()


def test_check_out_through_a_dangling_link_into_a_missing_directory_says_so(tmp_path):
    link = tmp_path / "verdicts.jsonl"
    link.symlink_to("nowhere/verdicts.jsonl")
    p = run_cli("check", "--sender", "0901234567", "--recipient", "0912345678", "--text", "hi", "--out", link,
                "--data-dir", tmp_path / "d")
    assert p.returncode == 2 and "verdicts.jsonl: a symbolic link to" in p.stderr, p.stderr
    assert not (tmp_path / "nowhere").exists()
