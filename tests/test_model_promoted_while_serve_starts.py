"""A model promoted while serve starts: serve loads the model first thing (its config check) and takes SIGUSR1 and
`ml promote`'s reload only once its control socket and signal handlers are up, a second or more later (the state,
the journals, the listeners). A `telfilter ml promote` in between found no serve answering ("installed; … serve
loads it when it starts", exit 0), and the serve kept the model it had read until something else reloaded it; so
with telfilter.toml's [ml] model edited then (its SIGUSR1 ignored). Now serve looks again at [ml] and the model's
files once its handlers are in place, and loads the model if they changed since its start read them."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from engine.ml.model import default_model_dir

from .conftest import CONFIG, ROOT, run_cli
from .test_control import _stop as stop_serve
from .test_serve import free_port, wait_for, wait_ready

# serve held just before it locks its data dir's files (after the config check loaded the model, before the control
# socket listens) until the test says go
GATED_SERVE = """
import os, sys, time
import engine.serve as serve
locked = serve.lock_serve_files
def gated(*a, **k):
    open(os.environ["GATE_AT"], "w").close()
    while not os.path.exists(os.environ["GATE_GO"]):
        time.sleep(0.01)
    return locked(*a, **k)
serve.lock_serve_files = gated
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _model(d, version):
    shutil.copytree(default_model_dir(), d)
    card = json.loads((d / "card.json").read_text())
    card["model_version"] = version
    (d / "card.json").write_text(json.dumps(card))
    return d


def _served_version(data):
    r = run_cli("--data-dir", data, "ctl", "stats")
    return json.loads(r.stdout)["model"]["version"] if r.returncode == 0 else None


@pytest.mark.parametrize("how", ["ml promote", "[ml] model edited"])
def test_a_model_changed_while_serve_starts_is_loaded_once_it_is_up(tmp_path, how):
    cfg, data, ready = tmp_path / "config", tmp_path / "data", tmp_path / "ready"
    shutil.copytree(CONFIG, cfg)
    target = _model(tmp_path / "model", "v-started-with")
    toml = cfg / "telfilter.toml"
    toml.write_text(toml.read_text().replace('model = ""', f'model = "{target}"', 1))
    promoted = _model(tmp_path / "candidate", "v-promoted")
    gate_at, gate_go = tmp_path / "gate.at", tmp_path / "gate.go"
    err = open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-c", GATED_SERVE, "--config", cfg, "serve", "--data-dir", data,
                          "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off",
                          "--log", tmp_path / "verdicts.jsonl", "--ready-file", ready], cwd=ROOT, stderr=err,
                         stdout=subprocess.DEVNULL, env={**os.environ, "GATE_AT": str(gate_at),
                                                         "GATE_GO": str(gate_go), "PYTHONPATH": str(ROOT)})
    try:
        assert wait_for(lambda: gate_at.exists() or p.poll() is not None, 60) and gate_at.exists(), \
            (tmp_path / "stderr.log").read_text()
        if how == "ml promote":
            r = run_cli("--config", cfg, "--data-dir", data, "ml", "promote", promoted, timeout=120)
            assert r.returncode == 0 and "serve loads it when it starts" in r.stderr, r.stdout + r.stderr
        else:
            toml.write_text(toml.read_text().replace(f'model = "{target}"', f'model = "{promoted}"', 1))
        gate_go.touch()
        wait_ready(p, ready, tmp_path / "stderr.log")
        assert wait_for(lambda: _served_version(data) == "v-promoted", 15), \
            (_served_version(data), (tmp_path / "stderr.log").read_text()[-3000:])
    finally:
        gate_go.touch()
        stop_serve(p)
