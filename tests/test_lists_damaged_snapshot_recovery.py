"""The way back from a damaged list snapshot: `lists import KIND FILE --replace` writes a good one.

Every edit of a list reads the stored one first and refuses to build on a damaged snapshot (its CRC or header
wrong): right for `lists add` and a plain import, but `--replace`, which keeps nothing of it, was refused too (exit
2, `refusing snapshot: not a telfilter snapshot (bad magic)`), as was every other write: the operator had no
command to mend the list, and the error said none. The DNC's --replace reads it as a start does (its previous
generation: the journal mark), then writes a good one."""
from .conftest import run_cli

HEAD = "sender,owner,category,valid_from,valid_to,accounts\n"


def test_replace_import_mends_a_damaged_registry_and_the_edit_error_says_how(tmp_path):
    d = tmp_path / "data"
    f = tmp_path / "senders.csv"
    f.write_text(HEAD + "BR1,Owner,QC,,,\n")
    run_cli("lists", "import", "senders", f, "--data-dir", d, check=True)
    run_cli("lists", "add", "senders", "BR2", "--owner", "Other", "--category", "QC", "--data-dir", d, check=True)
    snap = d / "lists" / "senders.snap"
    snap.write_bytes(b"\0" * 64)                    # damaged on disk
    r = run_cli("lists", "add", "senders", "BR3", "--owner", "Third", "--category", "QC", "--data-dir", d)
    assert r.returncode == 2 and f"{snap}: refusing snapshot: " in r.stderr, r.stderr
    assert "`telfilter lists import senders FILE --replace` writes a good one" in r.stderr, r.stderr
    exported = run_cli("lists", "export", "senders", "--data-dir", d, check=True).stdout   # the previous generation
    assert "BR1,Owner,QC" in exported and "BR2" not in exported
    f.write_text(exported + "BR2,Other,QC,,,\n")
    r = run_cli("lists", "import", "senders", f, "--replace", "--data-dir", d)
    assert r.returncode == 0, r.stderr
    assert '"names": 2' in r.stdout and "refusing" not in r.stderr, r.stdout + r.stderr
    run_cli("lists", "add", "senders", "BR3", "--owner", "Third", "--category", "QC", "--data-dir", d, check=True)
    out = run_cli("lists", "export", "senders", "--data-dir", d, check=True)
    assert [l.split(",")[0] for l in out.stdout.splitlines()[1:]] == ["BR1", "BR2", "BR3"] and not out.stderr


def test_a_plain_import_on_a_damaged_snapshot_is_still_refused(tmp_path):
    d = tmp_path / "data"
    f = tmp_path / "bl.csv"
    f.write_text("kind,value\ndomain,aaa.example\n")
    run_cli("lists", "import", "blacklist", f, "--data-dir", d, check=True)
    run_cli("lists", "import", "blacklist", f, "--data-dir", d, check=True)     # a .prev
    (d / "lists" / "blacklist.snap").write_bytes(b"\0" * 64)
    r = run_cli("lists", "import", "blacklist", f, "--data-dir", d)             # adds to what it cannot read
    assert r.returncode == 2 and "refusing snapshot" in r.stderr, r.stderr


def test_replace_import_mends_a_damaged_dnc_snapshot(tmp_path):
    d = tmp_path / "data"
    f = tmp_path / "dnc.csv"
    for n in ("0912000001", "0912000002"):
        f.write_text(f"number,channel\n{n},S\n")
        run_cli("lists", "import", "dnc", f, "--data-dir", d, check=True)
    (d / "lists" / "dnc.snap").write_bytes(b"\0" * 64)
    r = run_cli("lists", "add", "dnc", "0912000003", "--data-dir", d)
    assert r.returncode == 2 and "`telfilter lists import dnc FILE --replace` writes a good one" in r.stderr, r.stderr
    f.write_text("number,channel\n0912000001,S\n0912000002,S\n")
    r = run_cli("lists", "import", "dnc", f, "--replace", "--data-dir", d)
    assert r.returncode == 0 and '"total": 2' in r.stdout, r.stdout + r.stderr
    run_cli("lists", "add", "dnc", "0912000003", "--channel", "V", "--data-dir", d, check=True)
    out = run_cli("lists", "export", "dnc", "--data-dir", d, check=True)
    assert out.stdout.splitlines()[1:] == ["+84912000001,S", "+84912000002,S", "+84912000003,V"] and not out.stderr
