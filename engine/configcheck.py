"""`telfilter config check` and serve's start-up check: every config file of a directory,
validated by the loaders that will use it, each error as `path:line:col: message`.

`serve` runs the same `load_config` before anything listens and refuses to start on an error,
so a typo in sip.toml can no longer surface after SMPP is already taking traffic.
"""
from __future__ import annotations

import json

import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, Settings, key_line, load_settings, read_toml, shipped_config_dir

_UNKNOWN_KEY = re.compile(r"unknown key \[(\w+)\] (\S+)")


@dataclass
class LoadedConfig:
    settings: Settings | None = None
    smpp: object = None
    sip: object = None
    rules: object = None
    errors: list = field(default_factory=list)
    checked: list = field(default_factory=list)     # (file, summary) of what was read
    model: object = None                            # the scorer _model_errors loaded (serve uses it: loaded once)


def _located(e: Exception, path: Path, text: str) -> str:
    """A loader's message with the file:line where it can be found (loaders say only the file)."""
    msg = str(e)
    if msg.startswith(f"{path}:") and re.match(r"\d+:", msg[len(str(path)) + 1:]):
        return msg                                   # already located
    body = msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else f"{e.__class__.__name__}: {msg}"
    m = _UNKNOWN_KEY.search(body)
    line = key_line(text, m.group(1), m.group(2)) if m else None
    return f"{path}:{line}:1: {body}" if line else f"{path}: {body}"


def load_component(path: Path, loader, config_dir: Path, errors: list):
    """Syntax first (with line and column), then the component's own loader; None and the
    errors appended when the file is refused. Also what `ctl reload accounts|sip` reads with."""
    text = ""
    if path.exists():
        try:
            _, text = read_toml(path)
        except ConfigError as e:
            errors.extend(e.errors)
            return None
    try:
        return loader(config_dir)
    except Exception as e:           # each loader has its own error types; any of them is a config error here
        errors.extend(_located(e, path, text).splitlines())      # a loader may report several, a line each
        return None


def _component(cfg: LoadedConfig, path: Path, loader, config_dir: Path):
    return load_component(path, loader, config_dir, cfg.errors)


def _ok(path: Path, more: str = "") -> str:
    """A file's line in `config check`: one that is not there is no error (its defaults run) but is said so: a
    misspelt name must not read as a checked file."""
    return f"OK{more}" if path.exists() else f"not found: the built-in defaults{more}"


def load_config(config_dir=None, rules=True) -> LoadedConfig:
    """Load and validate telfilter.toml, smpp.toml, sip.toml and the rules directory."""
    from .rules.loader import RuleSetError, load_rules
    from .sip_screen.server import load_sip_settings
    from .smpp_proxy.accounts import load_smpp_settings
    cdir = Path(config_dir) if config_dir else shipped_config_dir()
    cfg = LoadedConfig()
    try:
        cfg.settings = load_settings(cdir)
    except ConfigError as e:
        cfg.errors.extend(e.errors)
        if not cdir.is_dir():
            return cfg
    cfg.errors.extend(_model_errors(cdir, cfg.settings, cfg))
    cfg.checked.append((cdir / "telfilter.toml", _ok(cdir / "telfilter.toml")))
    cfg.smpp = _component(cfg, cdir / "smpp.toml", load_smpp_settings, cdir)
    if cfg.smpp is not None:
        cfg.checked.append((cdir / "smpp.toml", _ok(cdir / "smpp.toml", f": {len(cfg.smpp.accounts)} ESME account(s)")))
    cfg.sip = _component(cfg, cdir / "sip.toml", load_sip_settings, cdir)
    if cfg.sip is not None:
        cfg.checked.append((cdir / "sip.toml", _ok(cdir / "sip.toml")))
    if rules:
        rdir = cdir / "rules"
        try:
            cfg.rules = load_rules(rdir)
            cfg.checked.append((rdir, f"OK: {len(cfg.rules.rules)} rules"))
        except RuleSetError as e:
            cfg.errors.extend(str(x) for x in e.errors)
        except Exception as e:       # the rules loader's own bug must not hide the other files' results
            cfg.errors.append(f"{rdir}: {e.__class__.__name__}: {e}")
    if cfg.smpp is not None and cfg.rules is not None:
        cfg.errors.extend(_silent_symbol_errors(cdir / "smpp.toml", cfg.smpp.silent_symbols, cfg.rules))
    # a file with an error is never "OK", whichever check found it
    cfg.checked = [(f, summary) for f, summary in cfg.checked
                   if not any(e == str(f) or e.startswith(f"{f}:") for e in cfg.errors)]
    return cfg


# what drops a message besides the rules' own symbols (pipeline.py, state/redis_store.py, verdict.py)
BUILTIN_DROP_SYMBOLS = ("ML_SPAM", "STATE_UNAVAILABLE", "PDU_DROPPED")


def _silent_symbol_errors(p: Path, symbols, rules) -> list[str]:
    """smpp.toml [drop] silent_symbols naming no symbol a drop can carry (a typo: the drops it meant to answer
    silently would be answered with their error status, and nothing would say so)."""
    import difflib
    known = {r.symbol for r in rules.rules} | set(BUILTIN_DROP_SYMBOLS)
    bad = [s for s in symbols if s not in known]
    if not bad:
        return []
    text = p.read_text(encoding="utf-8-sig") if p.exists() else ""
    out = []
    for s in bad:
        close = difflib.get_close_matches(s, sorted(known), n=1)
        out.append(f"{p}:{key_line(text, 'drop', 'silent_symbols')}:1: [drop] silent_symbols: {s!r} is no rule's "
                   f"symbol nor {', '.join(BUILTIN_DROP_SYMBOLS)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return out


def _model_errors(cdir: Path, st: Settings | None, cfg: LoadedConfig | None = None) -> list[str]:
    """[ml] model naming no model, or a model load_scorer refuses. serve loads it at start: a path that holds no
    usable model is a config error, not a traceback (`ml promote` may create it: it reads telfilter.toml with load_settings, which does not look).
    An [ml] threshold that inverts the pair with the card's other one, too. Both checked also when another key of
    telfilter.toml is wrong (`st` None), when the [ml] keys they need are right. The scorer loaded goes to `cfg.model`."""
    p = cdir / "telfilter.toml"
    try:
        raw, text = read_toml(p) if p.exists() else ({}, "")
    except ConfigError:
        return []                                    # a syntax error: load_settings said so
    if st is not None:
        enabled, model = st.ml_enabled, st.ml_model
        set_tag, set_drop = st.ml_tag_threshold, st.ml_drop_threshold
    else:
        ml = raw.get("ml") if isinstance(raw.get("ml"), dict) else {}
        enabled, model = ml.get("enabled", True), ml.get("model", "")
        if not isinstance(enabled, bool) or not isinstance(model, str):
            return []                                # a wrong type: load_settings said so
        if model and not Path(model).is_absolute():
            model = str((cdir / model).absolute())   # as load_settings resolves it
        set_tag, set_drop = ml.get("tag_threshold"), ml.get("drop_threshold")
        if not all(x is None or (type(x) in (int, float) and 0 <= x <= 1) for x in (set_tag, set_drop)):
            return []                                # a wrong value: load_settings said so
    if enabled and model and not (Path(model) / "card.json").is_file():
        return [f"{p}:{key_line(text, 'ml', 'model')}:1: [ml] model {model!r} is not a model "
                "directory (no card.json there; `telfilter ml promote` puts one there)"]
    if not enabled:
        return []
    # the model itself, as serve loads it at start (card, weights checksum, shapes, self-check texts): a corrupt or
    # half-copied model passed this check and then stopped serve (exit 2) right after it
    from .ml.model import ModelError, default_model_dir, load_scorer
    d = Path(model) if model else default_model_dir()
    if model or (d / "card.json").exists():         # no bundled model: serve runs without the ML stage (a warning)
        try:
            sc = load_scorer(d)
            if cfg is not None:
                cfg.model = sc
        except ModelError as e:
            return [f"{p}:{key_line(text, 'ml', 'model') if model else 1}:1: [ml] model: {e}"]
    if (set_tag is None) == (set_drop is None):
        return []
    # one threshold set, the other the card's: an inverted pair is refused at load (app.load_model)
    try:
        th = json.loads((Path(model or default_model_dir()) / "card.json").read_text(encoding="utf-8"))["thresholds"]
        tag = set_tag if set_tag is not None else float(th["tag"])
        drop = set_drop if set_drop is not None else float(th["drop"])
    except (OSError, ValueError, KeyError, TypeError):
        return []                                    # no bundled model, or a card load_model will refuse anyway
    if tag <= drop:
        return []
    key = "tag_threshold" if set_tag is not None else "drop_threshold"
    return [f"{p}:{key_line(text, 'ml', key)}:1: [ml] {key} {set_tag if set_tag is not None else set_drop} with the model card's "
            f"{'drop' if key == 'tag_threshold' else 'tag'} threshold makes tag {tag:.4f} above drop {drop:.4f}: "
            "set both"]
