"""Which compiled twins (setup.py's optional C extensions) this install has. Each is optional: without a C compiler
at `pip install` its build fails with a warning pip shows only under -v, and the pure-Python path runs (the same
answers, slower). `telfilter --version` names the ones not built."""
from __future__ import annotations

import importlib

MODULES = ("engine.ml._fastfeat", "engine.sip_screen._sipfast", "engine._textnorm", "engine._stamps",
           "engine._numbers", "engine.rules._slotsfast", "engine.smpp_proxy.codec._leanview")


def not_built() -> list:
    out = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(name)
    return out


def summary() -> str:
    missing = not_built()
    if not missing:
        return f"compiled paths: all {len(MODULES)} built"
    return (f"compiled paths: {len(missing)} of {len(MODULES)} not built ({', '.join(missing)}): their pure-Python "
            "fallbacks run (the same verdicts, slower); reinstall with a C compiler (gcc) to build them")
