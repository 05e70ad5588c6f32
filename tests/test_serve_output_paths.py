"""`telfilter serve`'s output paths (--log, --ready-file, --events) that cannot be used: each refused naming its flag,
one line, exit 2. A --log in a missing directory was `telfilter serve: PATH: No such file or directory`, said once
the lists and the state had loaded; a --events address in use, or an ipc:// path in a missing directory, a ZMQError
traceback, exit 1. Serve runs as root here too (root writes anywhere, so no unwritable-directory case)."""
import socket

import pytest

from .conftest import run_cli


def _serve(tmp_path, *flags):
    return run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", "off", "--smsc", "127.0.0.1:9",
                   "--control-socket", "off", "--smpp-listen", "127.0.0.1:0", *flags, timeout=60)


def _last(p):
    return p.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", ["--log", "--ready-file"])
def test_a_file_in_a_missing_directory_is_refused_naming_the_flag_before_the_start(tmp_path, flag):
    path = tmp_path / "missing" / "out"
    p = _serve(tmp_path, *(["--log", tmp_path / "v.jsonl"] if flag != "--log" else []), flag, path)
    assert p.returncode == 2, p.stderr
    assert _last(p) == f"telfilter serve: error: {flag} {path}: its directory {path.parent} does not exist"
    assert "lists in" not in p.stderr and "listening" not in p.stderr


@pytest.mark.parametrize("flag", ["--log", "--ready-file"])
def test_a_file_under_a_regular_file_is_refused_saying_it_is_not_a_directory(tmp_path, flag):
    (tmp_path / "afile").write_text("")
    path = tmp_path / "afile" / "out"
    p = _serve(tmp_path, *(["--log", tmp_path / "v.jsonl"] if flag != "--log" else []), flag, path)
    assert p.returncode == 2, p.stderr
    assert _last(p) == f"telfilter serve: error: {flag} {path}: its directory {path.parent} is not a directory"


def test_every_bad_output_path_is_said_at_once(tmp_path):
    p = _serve(tmp_path, "--log", tmp_path, "--ready-file", tmp_path / "no" / "ready")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-2:] == [
        f"telfilter serve: error: --log {tmp_path}: is a directory (name the file to write)",
        f"telfilter serve: error: --ready-file {tmp_path / 'no' / 'ready'}: its directory {tmp_path / 'no'} does not "
        "exist"]


def test_an_events_address_in_use_is_named_without_a_traceback(tmp_path):
    pytest.importorskip("zmq")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        ev = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        p = _serve(tmp_path, "--log", tmp_path / "v.jsonl", "--events", ev)
    finally:
        s.close()
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert _last(p) == f"telfilter serve: error: --events {ev}: Address already in use"


def test_an_events_ipc_path_in_a_missing_directory_is_named_without_a_traceback(tmp_path):
    pytest.importorskip("zmq")
    ev = f"ipc://{tmp_path / 'missing' / 'events'}"
    p = _serve(tmp_path, "--log", tmp_path / "v.jsonl", "--events", ev)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert _last(p).startswith(f"telfilter serve: error: --events {ev}: "), p.stderr
