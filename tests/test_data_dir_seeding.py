"""Which data dir the CLI picks when none is named, and when it seeds it with the sample lists (README, CLI:
"that implicit default ... is seeded on first use by any command but `serve`")."""
import json

from .conftest import run_cli


def _implicit(tmp_path, **more):
    return {"XDG_DATA_HOME": str(tmp_path / "xdg"), "TELFILTER_DATA_DIR": "", "HOME": str(tmp_path / "home"), **more}


def test_an_implicit_data_dir_a_serve_has_used_is_not_seeded(tmp_path):
    """Found by a day-one audit: serve on the implicit data dir with empty lists leaves state/ and smpp/ but no
    lists/; the next CLI command (`check`, `lists stats`) took that for a first use and seeded it, and the running
    serve's file watcher put the samples' made-up DNC numbers, brandnames and blacklist entries in force."""
    d = tmp_path / "xdg" / "telfilter"
    (d / "state").mkdir(parents=True)        # what serve's start leaves beside its empty lists
    (d / "smpp").mkdir()
    p = run_cli("lists", "stats", env=_implicit(tmp_path))
    assert p.returncode == 0 and "seeded" not in p.stderr, p.stderr
    assert json.loads(p.stdout)["senders"]["entries"] == 0
    assert not (d / "lists").exists()


def test_an_empty_or_missing_implicit_data_dir_is_seeded(tmp_path):
    (tmp_path / "xdg" / "telfilter").mkdir(parents=True)         # made empty by hand: still a first use
    p = run_cli("lists", "stats", env=_implicit(tmp_path))
    assert p.returncode == 0 and "seeded with the sample lists" in p.stderr, p.stderr
    assert json.loads(p.stdout)["senders"]["entries"] > 0


def test_a_relative_xdg_data_home_is_ignored(tmp_path, monkeypatch):
    """Found by a day-one audit: XDG_DATA_HOME=relxdg made (and seeded) relxdg/telfilter in whatever directory the
    command ran from; the XDG Base Directory spec says a relative path there is invalid and is to be ignored."""
    from engine.config import default_data_dir
    monkeypatch.setenv("XDG_DATA_HOME", "relxdg")
    monkeypatch.setenv("TELFILTER_DATA_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "telfilter"
