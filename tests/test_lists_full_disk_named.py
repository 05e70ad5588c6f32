"""A list write that a full disk stops names the file it could not write, as a missing input is named: `lists
import` said only "telfilter lists import: error: File too large" (the CSV read? the snapshot?), `lists export
--out F` the same. Nothing changes: the list and F stay as they were, and no temporary file is left.

The disk is simulated with RLIMIT_FSIZE (Python ignores SIGXFSZ: a write past it fails with EFBIG)."""
import resource
import subprocess
import sys

from .conftest import ROOT, run_cli


def _cli_with_disk_full_after(nbytes, *argv):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return subprocess.run([sys.executable, "-m", "engine.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, preexec_fn=limit)


def _dnc(tmp_path, n):
    f = tmp_path / f"dnc{n}.csv"
    f.write_text("number,channel\n" + "".join(f"09{i * 48271 % 10 ** 8:08d},S\n" for i in range(n)))
    return f


def test_an_import_the_disk_cannot_hold_names_the_snapshot_and_changes_nothing(tmp_path):
    d = tmp_path / "d"
    assert run_cli("lists", "import", "dnc", str(_dnc(tmp_path, 3)), "--data-dir", str(d)).returncode == 0
    before = run_cli("lists", "export", "dnc", "--data-dir", str(d)).stdout
    r = _cli_with_disk_full_after(4000, "lists", "import", "dnc", str(_dnc(tmp_path, 20000)), "--replace",
                                  "--data-dir", str(d))
    assert r.returncode == 2
    assert f"telfilter lists import: error: {d / 'lists' / 'dnc.snap'}: File too large" in r.stderr, r.stderr
    assert run_cli("lists", "export", "dnc", "--data-dir", str(d)).stdout == before
    assert not [p.name for p in (d / "lists").iterdir() if ".tmp" in p.name]


def test_an_export_the_disk_cannot_hold_names_the_out_file_and_leaves_it(tmp_path):
    d, out = tmp_path / "d", tmp_path / "dnc_out.csv"
    assert run_cli("lists", "import", "dnc", str(_dnc(tmp_path, 2000)), "--data-dir", str(d)).returncode == 0
    out.write_text("the previous export\n")
    r = _cli_with_disk_full_after(1000, "lists", "export", "dnc", "--out", str(out), "--data-dir", str(d))
    assert r.returncode == 2
    assert f"telfilter lists export: error: {out}: File too large" in r.stderr, r.stderr
    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
