"""`telfilter serve` ignores SIGHUP, SIGUSR1 and SIGUSR2 from the first line of the program (engine/cli.py main), not
only from cmd_serve's: the command line's parsing and serve's imports before it took ~0.45 s here, in which their
default action ended the process. logrotate's `systemctl kill -s USR2 telfilter.service` (contrib/logrotate.conf)
during a (re)start killed the new serve, or a pool's supervisor, by signal 12. Here every one of the three is
delivered as the command line is parsed. Other commands keep the dispositions they were started with (a CLI in a
closed terminal still ends on SIGHUP; under nohup it is still ignored)."""
import signal
import subprocess
import sys
import textwrap

from .conftest import ROOT
from .test_serve import free_port, wait_ready

PROBE = textwrap.dedent("""
    import os, signal, sys
    import engine.cli_checks as checks
    real = checks.parse_command_line

    def land_then_parse(parser, argv):          # every reload/reopen signal, delivered before kill returns
        for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            os.kill(os.getpid(), s)
        return real(parser, argv)

    if sys.argv[1] == "serve":
        checks.parse_command_line = land_then_parse
    else:                                       # what another command runs with
        import engine.commands as commands
        commands.cmd_config = lambda args: print(*[int(signal.getsignal(s)) for s in
                                                   (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)]) or 0
    sys.argv = ["telfilter", *sys.argv[1:]]
    from engine.cli import main
    sys.exit(main())
""")


def test_reload_and_reopen_signals_as_serve_parses_its_command_line_do_not_end_it(tmp_path):
    err_path, ready = tmp_path / "stderr.log", tmp_path / "ready"
    with open(err_path, "w") as err:
        p = subprocess.Popen([sys.executable, "-c", PROBE, "serve", "--data-dir", tmp_path / "data", "--smpp-listen",
                              f"127.0.0.1:{free_port()}", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                              "--ready-file", ready, "--control-socket", "off"],
                             cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
        try:
            wait_ready(p, ready, err_path)
            p.send_signal(signal.SIGTERM)
            assert p.wait(60) == 0, err_path.read_text()[-2000:]
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _dispositions(ignored_at_exec):
    def start():
        for s in ignored_at_exec:
            signal.signal(s, signal.SIG_IGN)
    p = subprocess.run([sys.executable, "-c", PROBE, "config", "check"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, preexec_fn=start)
    return p.returncode, p.stdout.split()


def test_other_commands_keep_the_dispositions_they_were_started_with():
    dfl, ign = str(int(signal.SIG_DFL)), str(int(signal.SIG_IGN))
    assert _dispositions(()) == (0, [dfl, dfl, dfl])
    assert _dispositions((signal.SIGHUP,)) == (0, [ign, dfl, dfl])     # nohup's
