"""Builds a ready pipeline from a config dir and a data dir (shared by CLI, serve, demo)."""
from __future__ import annotations

import logging
from pathlib import Path

from .config import Settings, default_data_dir, load_settings
from .lists import ListStore
from .lists.csvio import KINDS
from .lists.reports import ReportStore
from .pipeline import EngineState, Pipeline
from .rules.loader import load_rules

log = logging.getLogger("telfilter")


def seed_default_data(data_dir: Path, settings: Settings) -> None:
    """First use of the *default* data dir: import the shipped sample lists."""
    sample = settings.config_dir / "sample"
    store = ListStore(data_dir)
    for kind in KINDS:
        f = sample / f"{kind}.csv"
        if f.exists():
            store.import_csv(kind, f.read_bytes(), str(f))


def resolve_data_dir(arg, settings: Settings) -> Path:
    if arg:
        return Path(arg)
    d = default_data_dir()
    if not (d / "lists").exists():
        d.mkdir(parents=True, exist_ok=True)
        seed_default_data(d, settings)
    return d


def load_model(settings: Settings):
    if not settings.ml_enabled:
        return None
    from .ml.model import default_model_dir, load_scorer
    d = Path(settings.ml_model) if settings.ml_model else default_model_dir()
    if not settings.ml_model and not (d / "card.json").exists():
        log.warning("no bundled model at %s: ML stage off", d)
        return None
    return load_scorer(d)


def build(config_dir=None, data_dir=None, with_model=True, persist=True) -> Pipeline:
    settings = load_settings(config_dir)
    ddir = resolve_data_dir(data_dir, settings)
    store = ListStore(ddir)
    lists = store.load()
    for w in store.warnings:
        log.warning("%s", w)
    rules = load_rules(settings.rules_dir)
    reports = ReportStore(ddir)
    state = EngineState(reports=reports.load_index())
    model = load_model(settings) if with_model else None
    return Pipeline(settings, rules, lists=lists, store=store, state=state, model=model,
                    reports=reports, persist=persist)
