"""`lists import` of a big file (over 8 MB) shows a progress bar on a terminal, for every kind, and none when
stderr is piped. Only the DNC import had one: a blacklist of 500k domains (13 MB) read for 6 s, a registry or a
blacklist of millions of rows for minutes, without a word."""
import subprocess
import sys

import pytest

from .conftest import ROOT
from .pty_helpers import run_stderr_on_pty

PAD = " " * 1000                # a cell's blanks, stripped: a file over 8 MB from a few thousand rows
ROWS = {
    "dnc": ("number,channel", lambda i: f"09{i:08d},S{PAD}"),
    "senders": ("sender,owner,category,valid_from,valid_to,accounts", lambda i: f"S{i},Owner {i},QC,,,{PAD}"),
    "blacklist": ("kind,value", lambda i: f"domain,phish{i}.example{PAD}"),
    "consent": ("owner,number", lambda i: f"Owner,09{i:08d}{PAD}"),
}


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_a_big_import_shows_a_bar_on_a_terminal_and_none_when_piped(tmp_path, kind):
    header, row = ROWS[kind]
    f = tmp_path / f"{kind}.csv"
    f.write_text(header + "\n" + "".join(row(i) + "\n" for i in range(9000)))
    assert f.stat().st_size > 8 << 20
    argv = ["lists", "import", kind, str(f), "--data-dir", str(tmp_path / "d")]
    rc, err = run_stderr_on_pty(argv, None)
    assert rc == 0, err
    assert "%|" in err and f"reading {f}" in err, err
    p = subprocess.run([sys.executable, "-m", "engine.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and "%|" not in p.stderr and "reading" not in p.stderr, p.stderr
