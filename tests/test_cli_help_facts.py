"""What a --help says agrees with what the command does and the README says (found by the README audit, stop 49)."""
import argparse

from engine.cli import parser


def _help(*path):
    p = parser()
    for name in path:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return " ".join(p.format_help().split())


def test_serve_workers_help_says_sip_is_worker_0s():
    """`serve --workers N` shares the SMPP port among the workers and screens SIP in worker 0 alone
    (engine/supervisor.py: a call's state lives in one process); the help said every worker was on the SIP port."""
    h = _help("serve")
    assert "on the same SMPP and SIP ports" not in h
    assert "SIP in worker 0 alone" in h


def test_check_help_says_a_5656_report_goes_to_the_data_dirs_report_store():
    """`check` of a 5656 report (S/V/FW) appends it to the data dir's reports.jsonl as serve does (three tries of the
    syntax against one number from three --senders blocked that number with SENDER_REPORTED from serve's next start);
    the help said only that a 5656 command changes the data dir's lists."""
    h = _help("check")
    assert "reports.jsonl" in h and "SENDER_REPORTED" in h
