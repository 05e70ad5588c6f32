"""Builds a ready pipeline from a config dir and a data dir (shared by CLI, serve, demo)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .config import Settings, default_data_dir, load_settings
from .lists import ListStore
from .lists.csvio import KINDS
from .lists.reports import ReportStore
from .pipeline import EngineState, Pipeline, rules_stamp
from .rules.loader import load_rules

log = logging.getLogger("telfilter")


def seed_default_data(data_dir: Path, settings: Settings) -> None:
    """First use of the *default* data dir: import the shipped sample lists."""
    sample = settings.config_dir / "sample"
    store = ListStore(data_dir, settings.tz)
    for kind in KINDS:
        f = sample / f"{kind}.csv"
        if f.exists():
            store.import_csv(kind, f.read_bytes(), str(f))


def resolve_data_dir(arg, settings: Settings, seed: bool = True) -> Path:
    """--data-dir, else $TELFILTER_DATA_DIR, else $XDG_DATA_HOME/telfilter (~/.local/share/telfilter
    when unset). Only that last, implicit one is seeded with the shipped sample lists, on first
    use and when `seed` (the CLI's try-it-out path): a directory the user names (flag or
    environment) is a real registry and never gets the sample entries, and `serve` never seeds
    at all."""
    if arg:
        return _a_directory(Path(arg), "--data-dir")
    d = _a_directory(default_data_dir(), "$TELFILTER_DATA_DIR" if os.environ.get("TELFILTER_DATA_DIR") else "data dir")
    # first use: nothing in the directory yet. A serve started on it first leaves state/ and smpp/ but no lists/
    # while its lists are empty: seeded then, its file watcher put the samples' made-up DNC numbers, brandnames
    # and blacklist entries in force within a second of any CLI command (`check`, `lists stats`)
    if seed and not os.environ.get("TELFILTER_DATA_DIR") and not (d.exists() and any(d.iterdir())):
        d.mkdir(parents=True, exist_ok=True)
        seed_default_data(d, settings)
        # said by default (it was said under -v only): the lists a later `serve` on this dir judges with are the
        # samples' made-up numbers and brandnames until replaced
        log.warning("first use of %s: seeded with the sample lists of %s (made-up numbers and brandnames for trying "
                    "telfilter out; name a data dir with --data-dir for a real registry)", d,
                    settings.config_dir / "sample")
    return d


def _a_directory(d: Path, named: str) -> Path:
    """`d`, or ConfigError naming it when it is a file (each command failed on a path inside it: 'FILE/lists:
    Not a directory', 'FILE/models: …', 'FILE/reports.jsonl: …')."""
    if d.exists() and not d.is_dir():
        from .config import ConfigError
        raise ConfigError([f"{named} {d}: not a directory (the data dir holds lists/, reports.jsonl, models/)"])
    # a path under a file (FILE/data) failed the same way, a path inside it named per command
    above = next((p for p in d.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        from .config import ConfigError
        raise ConfigError([f"{named} {d}: cannot be made: {above} is not a directory"])
    return d


def load_model(settings: Settings, loaded=None):
    """The scorer serve judges with, or None (ML off). `loaded`: the one `config check` loaded from the same path."""
    if not settings.ml_enabled:
        return None
    from .ml.model import default_model_dir, load_scorer
    d = Path(settings.ml_model) if settings.ml_model else default_model_dir()
    if not settings.ml_model and not (d / "card.json").exists():
        log.warning("no bundled model at %s: ML stage off", d)
        return None
    m = loaded if loaded is not None else load_scorer(d)
    why = threshold_pair_error(settings, m.tag_threshold, m.drop_threshold, d)
    if why:
        from .config import ConfigError
        raise ConfigError(why)
    return m


def threshold_pair_error(settings: Settings, card_tag: float, card_drop: float, model_dir) -> str | None:
    """Why [ml]'s thresholds with model card's make an inverted pair (one set in [ml], the other the card's: a
    score between them would be allowed), else None. Checked where a model is loaded and before `ml promote`
    installs one (serve would refuse it at its next start)."""
    if settings.ml_tag_threshold is None and settings.ml_drop_threshold is None:
        return None         # the card's own pair: the model loader checks it and names the card (0 <= tag <= drop <= 1)
    if not (0 <= card_tag <= 1 and 0 <= card_drop <= 1):
        return None         # a card threshold out of range or NaN: the loader refuses the card itself, and says so
    tag = settings.ml_tag_threshold if settings.ml_tag_threshold is not None else card_tag
    drop = settings.ml_drop_threshold if settings.ml_drop_threshold is not None else card_drop
    if tag <= drop:
        return None
    own = "tag_threshold" if settings.ml_tag_threshold is not None else "drop_threshold"
    return (f"{settings.config_dir / 'telfilter.toml'}: [ml] {own} {getattr(settings, 'ml_' + own)} with the "
            f"model's {'drop' if own == 'tag_threshold' else 'tag'} threshold ({model_dir}/card.json) makes tag "
            f"{tag:.4f} above drop {drop:.4f}: set both")


def build(config_dir=None, data_dir=None, with_model=True, persist=True, seed=True, model=None) -> Pipeline:
    """The pipeline of a config and data dir. `model`: a scorer already loaded from the configured path (serve's
    config check loaded it), not read again."""
    settings = load_settings(config_dir)
    ddir = resolve_data_dir(data_dir, settings, seed)
    store = ListStore(ddir, settings.tz)
    read_from = store.snapshot_signature(), store.journal_signature()     # serve's watcher starts from them
    lists = store.load()
    for w in store.warnings:
        log.warning("%s", w)
    stamp = rules_stamp(settings.rules_dir)     # the files this read began with: serve's watcher starts from them
    rules = load_rules(settings.rules_dir)
    reports = ReportStore(ddir)
    state = EngineState(reports=reports.load_index())
    model = load_model(settings, model) if with_model else None
    pipe = Pipeline(settings, rules, lists=lists, store=store, state=state, model=model,
                    reports=reports, persist=persist)
    pipe.rules_stamp, pipe.lists_stamp = stamp, read_from
    return pipe
