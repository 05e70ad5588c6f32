"""`reports export --out LINK` (and every output written whole the same way: `ml compare --changes`, the TUI's e key)
writes the file the link names: the temporary file was renamed over the link itself, which became a plain file
while the file it named (a labelled set kept where the team reads it) stayed as it was, with "rows": N said."""
import os

from engine.analyst.store import Workspace

from .test_analyst import HOME, PRIZE, _cli, _store


def test_an_export_through_a_symbolic_link_writes_the_file_it_names(tmp_path):
    _store(tmp_path, [PRIZE, HOME])
    Workspace(tmp_path).label([r.id for r in Workspace(tmp_path).reports], "spam")
    shared = tmp_path / "team" / "labelled.tsv"
    shared.parent.mkdir()
    shared.write_text("label\ttext\n")
    link = tmp_path / "labelled.tsv"
    os.symlink(shared, link)
    r = _cli("reports", "export", "--out", link, "--data-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink()
    assert PRIZE in shared.read_text() and HOME in shared.read_text()
    assert not [p for p in shared.parent.iterdir() if p.name.endswith(".tmp")]
