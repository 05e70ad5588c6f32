"""contrib/telfilter.service stops a `serve --workers N` pool with one drain (probe, h_dnc). systemd's default
KillMode=control-group sends KillSignal to every process of the unit at once: each worker got SIGTERM from systemd
and again from the supervisor, which passes SIGTERM on, and a second SIGTERM cuts a drain short (README, Stopping:
"A second signal stops at once"; seen with the pool's process group signalled together under load: "second stop
signal: drain cut short", deliver_sm in flight left unanswered). KillMode=mixed sends SIGTERM to the main process
only (the supervisor, which drains the pool) and SIGKILL to what is left at TimeoutStopSec. No systemd runs here:
the unit is read as text, and the pool's stop through its supervisor alone is what test_sdnotify_pool runs."""
from .conftest import ROOT


def _service_keys():
    keys, section = {}, None
    for line in (ROOT / "contrib" / "telfilter.service").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif "=" in line and not line.startswith("#") and section == "[Service]":
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    return keys


def test_the_unit_signals_the_supervisor_only_at_a_stop():
    keys = _service_keys()
    assert keys.get("KillMode") == "mixed", keys.get("KillMode", "control-group (systemd's default)")
    assert keys.get("KillSignal", "SIGTERM") == "SIGTERM"


def test_the_unit_keeps_subscribers_data_from_other_local_users():
    """Found by the ops probe (stop 47): the verdict log, reports.jsonl and the DNC journal, which hold subscribers'
    numbers and texts, were created 0644 in 0755 directories (systemd's defaults), readable by every local user."""
    keys = _service_keys()
    assert keys.get("UMask") == "0027"
    assert keys.get("StateDirectoryMode") == keys.get("LogsDirectoryMode") == "0750"


def test_logrotate_asks_the_supervisor_only_for_the_reopen():
    """Found by the ops walkthrough: contrib/logrotate.conf's `systemctl kill -s USR2 telfilter.service` signals
    every process of the unit (systemd's default --kill-whom=all): with --workers N each worker got SIGUSR2 from
    systemd and again from the supervisor, which passes it on, and reopened the log twice (two crash spools made,
    two service-log lines per worker per rotation). --kill-who=main: the supervisor, or a single serve (systemd 252
    renamed it --kill-whom and still takes --kill-who; an older systemctl refuses --kill-whom, and `|| true` would
    hide that no reopen was asked for)."""
    text = (ROOT / "contrib" / "logrotate.conf").read_text()
    line = next(x for x in text.splitlines() if "USR2" in x and not x.lstrip().startswith("#"))
    assert "--kill-who=main" in line, line
