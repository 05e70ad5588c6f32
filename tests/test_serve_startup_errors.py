"""`telfilter serve` start-up errors an operator meets, each one line naming what failed, exit 2 (found by the CLI
audit): a port in use was "[Errno 98] error while attempting to bind on address ('127.0.0.1', N): address already
in use" for SMPP and for --metrics-listen alike, --log naming a directory "[Errno 21] Is a directory: '…'", and a
--ready-file naming a directory stopped serve once it was listening, leaving its temporary file beside it."""
import socket

import pytest

from .conftest import run_cli


@pytest.fixture
def taken():
    """A TCP port on 127.0.0.1 that something else listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def _serve(tmp_path, *flags):
    return run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", "off", "--smsc", "127.0.0.1:9",
                   "--control-socket", "off", "--log", tmp_path / "v.jsonl", *flags)


def _last(p):
    return p.stderr.strip().splitlines()[-1]


def test_an_smpp_port_in_use_is_named(tmp_path, taken):
    p = _serve(tmp_path, "--smpp-listen", f"127.0.0.1:{taken}")
    assert p.returncode == 2, p.stderr
    assert _last(p) == f"telfilter serve: error: SMPP listen 127.0.0.1:{taken}: Address already in use"


def test_a_metrics_port_in_use_is_named(tmp_path, taken):
    pytest.importorskip("prometheus_client")
    p = _serve(tmp_path, "--smpp-listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{taken}")
    assert p.returncode == 2, p.stderr
    assert _last(p) == f"telfilter serve: error: --metrics-listen 127.0.0.1:{taken}: Address already in use"


def test_a_verdict_log_that_is_a_directory_is_named_with_its_flag_without_errno(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    p = run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", "off", "--smsc", "127.0.0.1:9",
                "--control-socket", "off", "--smpp-listen", "127.0.0.1:0", "--log", d)
    assert p.returncode == 2, p.stderr
    # (was `telfilter serve: DIR: Is a directory`, said once the lists and the state had loaded)
    assert _last(p) == f"telfilter serve: error: --log {d}: is a directory (name the file to write)"
    assert "lists in" not in p.stderr


def test_a_ready_file_that_is_a_directory_is_refused_before_anything_listens(tmp_path):
    d = tmp_path / "ready"
    d.mkdir()
    p = _serve(tmp_path, "--smpp-listen", "127.0.0.1:0", "--ready-file", d)
    assert p.returncode == 2, p.stderr
    assert _last(p) == f"telfilter serve: error: --ready-file {d}: is a directory (name the file to write)"
    assert "listening" not in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.endswith(".tmp")) == []


def test_a_sip_port_in_use_stops_the_start_before_smpp_answers_or_an_smsc_is_bound(tmp_path):
    """Every port is bound before any takes a connection: with the SIP port taken, serve exits 2 naming it, and
    neither did its SMPP listener take an ESME nor did a link bind to the SMSC (it used to: the SMPP listener
    served and the links connected before the SIP bind failed)."""
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    smsc = socket.socket()
    smsc.bind(("127.0.0.1", 0))
    smsc.listen()
    smsc.setblocking(False)
    try:
        p = run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", f"127.0.0.1:{sip.getsockname()[1]}",
                    "--smsc", f"127.0.0.1:{smsc.getsockname()[1]}", "--control-socket", "off",
                    "--smpp-listen", "127.0.0.1:0", "--log", tmp_path / "v.jsonl")
        assert p.returncode == 2, p.stderr
        assert _last(p) == (f"telfilter serve: error: SIP listen 127.0.0.1:{sip.getsockname()[1]} (UDP): Address "
                            "already in use")
        assert "listening" not in p.stderr
        with pytest.raises(BlockingIOError):
            smsc.accept()                   # no link ever connected to the SMSC
    finally:
        sip.close()
        smsc.close()


def test_an_smpp_listen_host_that_does_not_resolve_is_named_with_why(tmp_path):
    """smpp.toml's listen with a host name the resolver does not know stopped serve with "Unknown error -2"
    (os.strerror of getaddrinfo's EAI_NONAME), not saying what was wrong."""
    import shutil
    from .conftest import ROOT
    cfg = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cfg)
    smpp = cfg / "smpp.toml"
    smpp.write_text(smpp.read_text().replace('listen = "0.0.0.0:2775"', 'listen = "no-such-host.invalid:2775"'))
    p = run_cli("serve", "--config", cfg, "--data-dir", tmp_path / "d", "--sip-listen", "off", "--smsc", "127.0.0.1:9",
                "--control-socket", "off", "--log", tmp_path / "v.jsonl")
    assert p.returncode == 2, p.stderr
    assert _last(p).startswith("telfilter serve: error: SMPP listen no-such-host.invalid:2775: "), p.stderr
    assert "Unknown error" not in p.stderr


def test_a_ready_file_left_by_a_killed_serve_is_removed_at_the_next_start(tmp_path, taken):
    """A serve killed (kill -9) leaves its --ready-file: the next start removes it once it holds the data dir, so a
    script waiting for the file never takes the dead one's ports for this one's (before, a start that then failed,
    here on a port in use, left the old file in place: "ready" with nothing listening)."""
    ready = tmp_path / "ready"
    ready.write_text("smpp 12345\n")
    p = _serve(tmp_path, "--smpp-listen", f"127.0.0.1:{taken}", "--ready-file", ready)
    assert p.returncode == 2, p.stderr
    assert not ready.exists()


def test_a_control_socket_in_a_missing_directory_is_refused_and_nothing_is_made(tmp_path):
    """Found by a day-one audit: serve made every missing directory of --control-socket (as root, /nonexistent/dir
    for a mistyped path) and ran, the ctl of the intended path then finding no serve."""
    sock = tmp_path / "missing" / "dir" / "c.sock"
    p = run_cli("serve", "--data-dir", tmp_path / "d", "--sip-listen", "off", "--smsc", "127.0.0.1:9",
                "--control-socket", sock, "--smpp-listen", "127.0.0.1:0", "--log", tmp_path / "v.jsonl",
                timeout=60)             # it served on (until the timeout) when it made the directories
    assert p.returncode == 2, p.stderr
    assert _last(p) == (f"telfilter serve: error: --control-socket {sock}: {sock.parent} is not a directory "
                        "(name a socket in an existing directory, or --control-socket off)")
    assert not (tmp_path / "missing").exists() and "listening" not in p.stderr


def test_a_sip_port_in_use_is_named_as_the_smpp_one_is(tmp_path, taken):
    """(The SIP screen's TCP listener said asyncio's "error while attempting to bind on address ('127.0.0.1', N):
    address already in use" after its own "SIP listen 127.0.0.1:N (TCP):".)"""
    p = run_cli("serve", "--data-dir", tmp_path / "d", "--smpp-listen", "127.0.0.1:0", "--smsc", "127.0.0.1:9",
                "--control-socket", "off", "--log", tmp_path / "v.jsonl", "--sip-listen", f"127.0.0.1:{taken}")
    assert p.returncode == 2, p.stderr
    assert _last(p) == f"telfilter serve: error: SIP listen 127.0.0.1:{taken} (TCP): Address already in use"
