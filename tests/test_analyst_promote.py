"""engine/analyst/promote.py: `ml promote` / `ml rollback` (the [ml] model link, its versions, the running serve's
reload and refusal), split from test_analyst.py by role."""
import json
import threading

import pytest

from engine.analyst.promote import PromoteError, current, install, previous, rollback

from .test_analyst import BUNDLED, HOME, PRIZE, _cli

# ------------------------------------------------------------------ promote / rollback
def _fake_model(src, d, version):
    d.mkdir()
    card = json.loads((src / "card.json").read_text())
    card["model_version"] = version
    (d / "card.json").write_text(json.dumps(card))
    (d / "weights.npz").write_bytes((src / "weights.npz").read_bytes())
    return d


def test_promote_keeps_the_previous_model_and_rollback_swaps_back(tmp_path):
    target = tmp_path / "model"
    b = _fake_model(BUNDLED, tmp_path / "b", "v-b")
    # a model installed by hand as a plain directory becomes the previous one
    _fake_model(BUNDLED, target, "v-manual")
    out = install(b, target)
    assert out["model_version"] == "v-b" and out["previous_version"] == "v-manual"
    assert target.is_symlink() and json.loads((target / "card.json").read_text())["model_version"] == "v-b"
    assert rollback(target)["model_version"] == "v-manual"
    assert json.loads((target / "card.json").read_text())["model_version"] == "v-manual"
    assert rollback(target)["model_version"] == "v-b"              # and forward again
    assert previous(target).name.startswith("v-manual")
    # a broken model is refused before anything changes
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text("{}")
    (bad / "weights.npz").write_bytes(b"x")
    cur = current(target)
    with pytest.raises(PromoteError, match="nothing changed"):
        install(bad, target)
    assert current(target) == cur
    with pytest.raises(PromoteError, match="no previous model"):
        rollback(tmp_path / "other")


def test_a_copy_left_by_a_killed_promote_is_removed_by_the_next(tmp_path):
    """A promote killed while copying leaves `.<version>-<time>.tmp/` in the versions directory (never linked, so
    never served); nothing removed it, and each such kill kept a model's size of disk for good."""
    from engine.analyst.promote import versions_dir
    target = tmp_path / "model"
    install(_fake_model(BUNDLED, tmp_path / "v-a", "v-a"), target)
    left = versions_dir(target) / ".v-b-20261205T000000000000Z.tmp"
    left.mkdir()
    (left / "weights.npz").write_bytes(b"half")
    install(_fake_model(BUNDLED, tmp_path / "v-b", "v-b"), target)
    assert not left.exists() and json.loads((target / "card.json").read_text())["model_version"] == "v-b"


@pytest.mark.parametrize("change", ["weights", "both"])
def test_promote_installs_only_the_model_it_validated(tmp_path, monkeypatch, change):
    # found by an analyst pass: install() validated MODEL, then copied its files unchecked; an `ml train --out MODEL`
    # rewriting it in between (weights.npz first, then card.json) left a model serve refuses (or another version)
    # behind the link, and with no serve running it was only found when serve would not start
    import shutil
    from engine.analyst import promote
    target = tmp_path / "model"
    a = _fake_model(BUNDLED, tmp_path / "a", "v-a")
    install(a, target)
    b = _fake_model(BUNDLED, tmp_path / "b", "v-b")
    other = _fake_model(BUNDLED, tmp_path / "other", "v-other")
    real = shutil.copyfile

    def copy_while_retrained(src, dst):
        if change == "weights" and src.name == "weights.npz":
            w = bytearray(src.read_bytes())
            w[len(w) // 2] ^= 0xFF                       # the retrain's new weights, its card not written yet
            dst.write_bytes(bytes(w))
            return dst
        return real(other / src.name if change == "both" else src, dst)
    monkeypatch.setattr(promote.shutil, "copyfile", copy_while_retrained)
    before = current(target)
    with pytest.raises(PromoteError, match="nothing changed"):
        install(b, target)
    assert current(target) == before and json.loads((target / "card.json").read_text())["model_version"] == "v-a"
    assert [p.name for p in promote.versions_dir(target).iterdir() if p.name.endswith(".tmp")] == []


def test_promote_needs_a_configured_model_path(tmp_path):
    r = _cli("ml", "promote", BUNDLED, "--data-dir", tmp_path)
    assert r.returncode == 2 and "[ml] model is not set" in r.stderr
    r = _cli("ml", "rollback", "--data-dir", tmp_path)
    assert r.returncode == 2 and "nothing to roll back to" in r.stderr and "installs the model" not in r.stderr


def test_a_promote_that_fails_copying_leaves_a_hand_installed_model_where_it_was(tmp_path, monkeypatch):
    """Found by analyst2 reading install(): a model directory installed by hand at [ml] model is moved into the
    versions directory first; when the copy of the new model then failed (a full disk), the error said "refused,
    nothing changed" but the path named nothing any more: a serve restarted after it refused to start."""
    import shutil
    import engine.analyst.promote as promote
    target = tmp_path / "model"
    shutil.copytree(BUNDLED, target)
    new = _fake_model(BUNDLED, tmp_path / "new", "v-new")

    def full(src, dst, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(promote.shutil, "copyfile", full)
    with pytest.raises(PromoteError) as e:
        install(new, target)
    assert "nothing changed" in str(e.value)
    assert target.is_dir() and not target.is_symlink() and (target / "card.json").exists()
    assert not list(promote.versions_dir(target).glob("*-manual*"))


def test_the_first_promote_is_compared_with_the_bundled_model_serve_was_running(tmp_path):
    """Found by a first trial: a 14-message model went into an empty configured path with no warning (the
    comparison was with the model at the path only, and there was none)."""
    from engine.analyst.promote import coverage_warnings
    small = _fake_model(BUNDLED, tmp_path / "small", "v-small")
    card = json.loads((small / "card.json").read_text())
    card["languages"] = {lang: {"messages": 7, "spam": 3} for lang in card["languages"]}
    (small / "card.json").write_text(json.dumps(card))
    warned = coverage_warnings(small, tmp_path / "model")
    assert warned and all("the served model" in w for w in warned)


class _FakeServe(threading.Thread):
    """A control socket that refuses every model reload, as a serve of another build would."""

    def __init__(self, path):
        super().__init__(daemon=True)
        import socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.requests = []

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                req = json.loads(c.makefile().readline())
                self.requests.append(req["cmd"])
                c.sendall(json.dumps(self.answer(req)).encode() + b"\n")

    def answer(self, req):
        return ({"ok": False, "error": "reload refused in part", "model": {"ok": False, "version": "v-old",
                 "error": "feature configuration not supported"}} if req["cmd"] == "reload"
                else {"ok": True, "model": {"version": "v-old"}})


def promote_with_serve(serve_cls, model, cfg, data):
    """`ml promote MODEL` with a fake serve of `serve_cls` on data's control socket: the CLI's result."""
    data.mkdir(exist_ok=True)
    srv = serve_cls(data / "control.sock")
    srv.start()
    try:
        return _cli("ml", "promote", model, "--config", cfg, "--data-dir", data), srv
    finally:
        srv.sock.close()


def _config_naming_model(tmp_path, ml_enabled=True):
    """A copy of the shipped config whose [ml] model is tmp_path/model: (config dir, data dir, model path)."""
    from engine.config import shipped_config_dir
    import shutil
    cfg, data, target = tmp_path / "cfg", tmp_path / "data", tmp_path / "model"
    shutil.copytree(shipped_config_dir(), cfg)
    toml = cfg / "telfilter.toml"
    text = toml.read_text().replace('model = ""', f'model = "{target}"')
    toml.write_text(text if ml_enabled else text.replace("enabled = true", "enabled = false"))
    return cfg, data, target


def test_promote_refused_by_the_running_serve_puts_the_old_model_back(tmp_path):
    cfg, data, target = _config_naming_model(tmp_path)
    old = _fake_model(BUNDLED, tmp_path / "old", "v-old")
    new = _fake_model(BUNDLED, tmp_path / "new", "v-new")
    r = _cli("ml", "promote", old, "--config", cfg, "--data-dir", data, "--no-reload")
    assert r.returncode == 0, r.stderr
    r, srv = promote_with_serve(_FakeServe, new, cfg, data)
    assert r.returncode == 1 and "refused the model" in r.stderr and "feature configuration" in r.stderr
    assert json.loads(r.stdout)["rolled_back"] is True
    assert json.loads((target / "card.json").read_text())["model_version"] == "v-old"
    assert srv.requests == ["reload"]


class _ServeWithoutModel(_FakeServe):
    """A control socket of a serve whose telfilter.toml has [ml] enabled = false: reloads fine, serves no model."""

    def answer(self, req):
        return {"ok": True, "model": {"ok": True, "version": None}}


def test_promote_and_eval_say_that_ml_is_off_in_telfilter_toml(tmp_path):
    """Found by analyst2: with [ml] enabled = false, `ml promote` into a running serve failed with "serve reloaded
    but reports model None ... (does its [ml] model name PATH?)", though it does; and `ml eval` without --model
    measured the model at the path as "the model serve would load" with no word that serve loads none."""
    cfg, data, target = _config_naming_model(tmp_path, ml_enabled=False)
    new = _fake_model(BUNDLED, tmp_path / "new", "v-new")
    r, _ = promote_with_serve(_ServeWithoutModel, new, cfg, data)
    assert r.returncode == 1 and "[ml] enabled = false" in r.stderr and "does its [ml] model name" not in r.stderr, \
        r.stderr
    held = tmp_path / "held.tsv"
    held.write_text(f"label\ttext\nspam\t{PRIZE}\nham\t{HOME}\n")
    r = _cli("ml", "eval", "--data", held, "--config", cfg, "--data-dir", data)
    assert r.returncode == 0 and "[ml] enabled = false, so serve judges without a model" in r.stderr, r.stderr
