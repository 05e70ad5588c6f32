"""Config and rule files saved by Windows Notepad: a UTF-8 BOM and CRLF line ends.

tomllib refuses a BOM ("Invalid statement" at 1:1), so a telfilter.toml, smpp.toml, sip.toml or rule file an
engineer had saved as UTF-8 on Windows was refused with a message that named nothing wrong (the BOM cannot be
seen in an editor), while the list CSVs and JSONL inputs beside them read the same bytes. A BOM is now no part of
the text; errors after it keep their lines and columns."""
import shutil

import pytest

from engine.rules.loader import load_rules

from .conftest import CONFIG, run_cli

BOM = b"\xef\xbb\xbf"


@pytest.fixture
def cfg(tmp_path):
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    for f in list(d.glob("*.toml")) + list((d / "rules").glob("*.toml")):
        f.write_bytes(BOM + f.read_bytes().replace(b"\n", b"\r\n"))
    return d


def test_every_file_with_a_bom_and_crlf_checks_clean(cfg):
    r = run_cli("config", "check", cfg)
    assert r.returncode == 0, r.stderr
    for name in ("telfilter.toml: OK", "smpp.toml: OK", "sip.toml: OK", "rules: OK"):
        assert name in r.stdout
    r = run_cli("rules", "check", cfg / "rules")
    assert r.returncode == 0 and "examples pass" in r.stdout, r.stderr
    # the rule sources verdicts name are the same lines as without the BOM
    assert [r.source.split("/")[-1] for r in load_rules(cfg / "rules").rules] == \
        [r.source.split("/")[-1] for r in load_rules(CONFIG / "rules").rules]


@pytest.mark.parametrize("name,body,says", [
    ("telfilter.toml", b"[engine]\r\ntimezon = 'UTC'\r\n", "telfilter.toml:2:1: unknown key 'timezon'"),
    ("telfilter.toml", b"[engine\r\n", "telfilter.toml:1:8: Expected ']'"),
    ("smpp.toml", b"[server]\r\nidle_timeout = 0\r\n", "smpp.toml:2:1: [server] idle_timeout must be"),
    ("sip.toml", b"[sip]\r\ntcp_idle_timeout = -1.0\r\n", "sip.toml:2:1: [sip] tcp_idle_timeout must be above 0"),
    ("rules/40-spam-senders.toml", b"[[rule]]\r\nsymbol = 'X'\r\nacton = 'drop'\r\n",
     "40-spam-senders.toml:3:1: unknown key 'acton'"),
])
def test_errors_after_a_bom_keep_their_line(cfg, name, body, says):
    (cfg / name).write_bytes(BOM + body)
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert "Invalid statement" not in r.stderr


@pytest.mark.parametrize("name, body, says", [
    ("telfilter.toml", "# pasted:\u2028note\n[engine]\ntimezone = 'UTC'\ntimezon = 'UTC'\n",
     "telfilter.toml:4:1: unknown key 'timezon'"),
    ("smpp.toml", "# \x85\n[server]\nidle_timeout = 0\n", "smpp.toml:3:1: [server] idle_timeout must be"),
])
def test_a_unicode_line_separator_in_a_comment_is_no_line_end(cfg, name, body, says):
    # TOML ends a line at \n only: errors after a U+2028 or NEL named a line too far down
    (cfg / name).write_text(body, encoding="utf-8")
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and says in r.stderr, r.stderr
