"""`ml promote` / `ml rollback` reach the running serve that loads the model path, whatever data dir they were
given. They told only the serve of the data dir they resolved themselves (--data-dir, else $TELFILTER_DATA_DIR,
else ~/.local/share/telfilter), and the config does not name serve's: with `--config` naming a serve's config and
no --data-dir, promote said "installed; no telfilter serve answers on ~/.local/share/telfilter/control.sock ...:
serve loads it when it starts", exit 0, while that serve ran on with the old model. Now each serve notes its
control socket beside the model path (engine/analyst/serves.py) and promote tells those too."""
import json
import os
import subprocess
import sys

from .conftest import ROOT
from .test_analyst import BUNDLED
from .test_analyst_promote import _config_naming_model, _fake_model
from .test_serve import free_port, wait_ready


def _cli(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=e)


def _served_version(data):
    r = _cli("ctl", "--data-dir", data, "stats")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["model"]["version"]


def test_promote_and_rollback_with_the_config_alone_reload_the_serve_of_that_model(tmp_path):
    cfg, data, target = _config_naming_model(tmp_path)
    old = _fake_model(BUNDLED, tmp_path / "old", "v-old")
    new = _fake_model(BUNDLED, tmp_path / "new", "v-new")
    assert _cli("ml", "promote", old, "--config", cfg, "--no-reload").returncode == 0
    elsewhere = {"TELFILTER_DATA_DIR": str(tmp_path / "analyst-home")}     # the analyst's shell: not serve's
    ready, log = tmp_path / "ready", tmp_path / "serve.log"
    with open(log, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", data,
                              "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off",
                              "--ready-file", ready], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        wait_ready(p, ready, log)
        assert _served_version(data) == "v-old"
        r = _cli("ml", "promote", new, "--config", cfg, env=elsewhere)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["serve"]["serve"] == "running", r.stdout    # before: "none", exit 0 all the same
        assert _served_version(data) == "v-new"
        r = _cli("ml", "rollback", "--config", cfg, env=elsewhere)
        assert r.returncode == 0, r.stderr
        assert _served_version(data) == "v-old"
    finally:
        p.terminate()
        p.wait(30)
    assert p.returncode == 0, log.read_text()
    assert not list((target.parent / f".{target.name}.versions" / "serves").iterdir())   # its stop removed its note


def test_a_killed_serves_note_is_forgotten(tmp_path):
    cfg, data, target = _config_naming_model(tmp_path)
    old = _fake_model(BUNDLED, tmp_path / "old", "v-old")
    new = _fake_model(BUNDLED, tmp_path / "new", "v-new")
    assert _cli("ml", "promote", old, "--config", cfg, "--no-reload").returncode == 0
    from engine.analyst.serves import register, registered
    register(target, tmp_path / "gone" / "control.sock")           # what a kill -9 leaves
    r = _cli("ml", "promote", new, "--config", cfg, "--data-dir", data)
    assert r.returncode == 0 and "serve loads it when it starts" in r.stderr, r.stderr
    assert registered(target) == []
