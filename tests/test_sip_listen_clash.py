"""A SIP port already taken (UDP or TCP) stops serve with an error that names the address, as SMPP's does."""
import socket
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_a_taken_sip_port_is_named(tmp_path, kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        s.listen()
    port = s.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                            "--smpp-listen", "127.0.0.1:0", "--sip-listen", f"127.0.0.1:{port}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert r.returncode == 2 and f"127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr, r.stderr
