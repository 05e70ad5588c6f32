"""A `telfilter serve` whose start fails after it opened the verdict log and the message-id log (a port in use: exit
2) closes what it opened, in the stop's order (engine/serve_stop.py). It left them to the process's exit: the verdict
log's crash spool (`.<log>.spool.<pid>.<token>`, 8 MiB) beside --log, the message-id log's in DATA_DIR/smpp, the
control socket, and its note beside the [ml] model for `ml promote` (a note naming a socket nobody answers)."""
import shutil
import socket

import pytest

from engine.analyst.serves import registered
from engine.ml.model import default_model_dir

from .conftest import CONFIG, run_cli
from .test_serve import free_port, free_sip_port


def _spools(d):
    return sorted(p.name for p in d.rglob("*") if ".spool." in p.name)


@pytest.mark.parametrize("busy", ["metrics", "smpp", "sip"])
def test_a_start_that_fails_on_a_port_in_use_leaves_no_spool_socket_or_model_note(tmp_path, busy):
    if busy == "metrics":
        pytest.importorskip("prometheus_client")
    cfg, model = tmp_path / "config", tmp_path / "model"
    shutil.copytree(CONFIG, cfg)
    shutil.copytree(default_model_dir(), model)
    toml = cfg / "telfilter.toml"
    toml.write_text(toml.read_text().replace('model = ""', f'model = "{model}"', 1))
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    taken = socket.socket()         # something else listens on the port serve is given (TCP: SIP's too)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy_port = taken.getsockname()[1]
    port = {k: (busy_port if k == busy else free) for k, free in
            (("smpp", free_port()), ("sip", free_sip_port()), ("metrics", free_port()))}
    try:
        p = run_cli("--config", cfg, "serve", "--data-dir", data, "--log", logs / "verdicts.jsonl",
                    "--smpp-listen", f"127.0.0.1:{port['smpp']}", "--sip-listen", f"127.0.0.1:{port['sip']}",
                    "--metrics-listen", f"127.0.0.1:{port['metrics']}", timeout=120)
    finally:
        taken.close()
    assert p.returncode == 2, p.stderr
    assert "address already in use" in p.stderr.strip().splitlines()[-1].lower(), p.stderr[-2000:]
    assert "control socket" in p.stderr, p.stderr[-2000:]      # the start got past opening both logs
    assert (logs / "verdicts.jsonl").exists()
    assert _spools(logs) == [] and _spools(data) == [], (_spools(logs), _spools(data))
    assert not (data / "control.sock").exists()
    assert registered(model) == []
