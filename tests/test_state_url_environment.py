"""The `--state` URL's password kept off argv (where every local user reads it in ps and /proc/PID/cmdline), as the
SMSC password and the ESME accounts are: `$TELFILTER_STATE` gives the URL when `--state` is not on the command line,
to `serve` and `config check` alike, and a `--state` URL holding a password is warned about. Until stop 68 argv was the
only way to name a Redis server that requires a password."""
from .conftest import run_cli

BAD = "redis://:Secr3tPw@127.0.0.1:1/0?on_error=bogus"     # refused before any connection: no server needed


def test_config_check_reads_the_url_from_the_environment():
    r = run_cli("config", "check", env={"TELFILTER_STATE": BAD, "TELFILTER_ESME_ACCOUNTS": "e:pw"})
    assert r.returncode == 2 and "on_error is open or closed, not 'bogus'" in r.stderr, r.stderr
    assert "Secr3tPw" not in r.stderr and "on the command line" not in r.stderr


def test_serve_reads_the_url_from_the_environment(tmp_path):
    r = run_cli("serve", "--workers", "2", "--data-dir", tmp_path, env={"TELFILTER_STATE": BAD}, timeout=60)
    assert r.returncode == 2 and "on_error is open or closed, not 'bogus'" in r.stderr, r.stderr
    assert "Secr3tPw" not in r.stderr and "on the command line" not in r.stderr


def test_a_password_on_the_command_line_is_warned_about(tmp_path):
    r = run_cli("serve", "--workers", "2", "--data-dir", tmp_path, "--state", BAD,
                env={"TELFILTER_STATE": "redis://127.0.0.1:1/0"}, timeout=60)      # argv first, as --smsc-password
    assert r.returncode == 2 and "on_error is open or closed, not 'bogus'" in r.stderr, r.stderr
    assert "--state holds a password: on the command line it is readable by every local user" in r.stderr, r.stderr
    assert "TELFILTER_STATE" in r.stderr and "Secr3tPw" not in r.stderr
    r = run_cli("serve", "--workers", "2", "--data-dir", tmp_path, "--state", BAD.replace(":Secr3tPw@", ""),
                timeout=60)
    assert r.returncode == 2 and "on the command line" not in r.stderr, r.stderr


def test_config_check_counts_a_password_on_the_command_line_as_a_warning(tmp_path):
    """`config check --strict` fails on its warnings: the --state password one was logged beside them, uncounted."""
    sock = f"{tmp_path}/absent.sock?db=0"              # unreachable: a warning of its own, no connection made
    env = {"TELFILTER_ESME_ACCOUNTS": "e:pw"}
    r = run_cli("config", "check", "--state", f"unix://{sock}", env=env)
    assert r.returncode == 0 and "telfilter config check: 1 warning(s)" in r.stderr, r.stderr
    r = run_cli("config", "check", "--state", f"unix://:Secr3tPw@{sock}", env=env)
    assert r.returncode == 0 and "telfilter config check: 2 warning(s)" in r.stderr, r.stderr
    assert "--state holds a password" in r.stderr and "Secr3tPw" not in r.stderr


def test_a_pool_worker_does_not_say_it_again(monkeypatch, caplog):
    """A `--workers N` pool's workers get the supervisor's command line (supervisor._child_argv): each said the
    warning the supervisor had said, N + 1 times a start and once more at each worker's restart."""
    from types import SimpleNamespace

    from engine.credentials import state_url
    url = "redis://:Secr3tPw@127.0.0.1:6379/0"
    assert state_url(SimpleNamespace(state=url)) == url and "--state holds a password" in caplog.text
    caplog.clear()
    monkeypatch.setenv("TELFILTER_WORKERS", "2")
    monkeypatch.setenv("TELFILTER_WORKER", "1")
    assert state_url(SimpleNamespace(state=url)) == url and "--state holds a password" not in caplog.text
