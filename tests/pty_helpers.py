"""Running the CLI with its stderr on a pseudo-terminal (progress bars are drawn only on a terminal)."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from .conftest import ROOT


def run_stderr_on_pty(argv, env, stdin=None) -> tuple[int, str]:
    """`telfilter argv` with stderr on a 100-column pseudo-terminal: (exit status, what it wrote there)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))    # else 0 columns: an empty bar
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", *map(str, argv)], cwd=ROOT, env=env, stdin=stdin,
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:             # EIO: the child closed its end
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    return p.wait(300), b"".join(chunks).decode(errors="replace")
