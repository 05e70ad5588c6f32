"""`telfilter ctl --socket PATH` naming something that is no socket (README, ctl: exit 2 when no serve answers)."""
import socket

from .conftest import run_cli


def test_a_socket_path_that_is_a_directory_or_a_file_is_said_so(tmp_path):
    """Found by a day-one audit: `ctl --socket DATA_DIR` (the directory, not DATA_DIR/control.sock) or a file
    named by mistake said "Connection refused", as if a serve had died there."""
    f = tmp_path / "verdicts.log"
    f.write_text("")
    for path, what in ((tmp_path, "it is a directory"), (f, "it is not a socket")):
        p = run_cli("ctl", "--socket", path, "stats")
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == (f"telfilter ctl stats: error: no telfilter serve answers on {path} ({what}: "
                                    "name serve's control socket, DATA_DIR/control.sock or serve's --control-socket)")


def test_a_socket_nothing_listens_on_still_says_connection_refused(tmp_path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "c.sock"))         # bound, never listening: left by a serve that was killed
    s.close()
    p = run_cli("ctl", "--socket", tmp_path / "c.sock", "stats")
    assert p.returncode == 2 and p.stderr.strip().endswith("c.sock (Connection refused)"), p.stderr
