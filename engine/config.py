"""Engine settings: `config/telfilter.toml`, with defaults for every key.

The shipped `config/` directory is found beside the package (a source checkout or an
editable install) or, for a wheel install, under `<prefix>/share/telfilter/config`.
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def shipped_config_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "config"
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "telfilter" / "config"


def default_data_dir() -> Path:
    env = os.environ.get("TELFILTER_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "telfilter"


class ConfigError(Exception):
    pass


@dataclass
class Settings:
    config_dir: Path
    timezone: str = "Asia/Ho_Chi_Minh"
    shortcode: str = "5656"
    ml_enabled: bool = True
    ml_model: str = ""                 # empty = the bundled default model
    ml_tag_threshold: float | None = None
    ml_drop_threshold: float | None = None
    ml_skip_registered: bool = True
    ml_score_weight: float = 0.0
    ml_min_words: int = 4
    raw: dict = field(default_factory=dict)

    @property
    def tz(self):
        return ZoneInfo(self.timezone)

    @property
    def rules_dir(self) -> Path:
        return self.config_dir / "rules"

    def section(self, name) -> dict:
        return self.raw.get(name, {})


def load_settings(config_dir: Path | None = None) -> Settings:
    cdir = Path(config_dir) if config_dir else shipped_config_dir()
    if not cdir.is_dir():
        raise ConfigError(f"{cdir}: config directory does not exist")
    p = cdir / "telfilter.toml"
    raw = {}
    if p.exists():
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: {e}") from None
    eng = raw.get("engine", {})
    ml = raw.get("ml", {})
    s = Settings(config_dir=cdir, raw=raw)
    s.timezone = eng.get("timezone", s.timezone)
    s.shortcode = str(eng.get("shortcode", s.shortcode))
    s.ml_enabled = bool(ml.get("enabled", True))
    s.ml_model = ml.get("model", "")
    s.ml_tag_threshold = ml.get("tag_threshold")
    s.ml_drop_threshold = ml.get("drop_threshold")
    s.ml_skip_registered = bool(ml.get("skip_registered_senders", True))
    s.ml_score_weight = float(ml.get("score_weight", 0.0))
    s.ml_min_words = int(ml.get("min_words", 4))
    try:
        s.tz
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{p}: unknown time zone {s.timezone!r}") from None
    return s
