"""Engine settings: `config/telfilter.toml`, with defaults for every key.

The shipped `config/` directory is found beside the package (a source checkout or an
editable install) or, installed, inside it as `engine/shipped_config` (setup.py maps it there,
so `pip install --user`, a venv, a wheel and a container all find it the same way).
"""
from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .numbers import SHORTCODE_MAX_DIGITS


def shipped_config_dir() -> Path:
    pkg = Path(__file__).resolve().parent
    checkout = pkg.parent / "config"
    if (checkout / "telfilter.toml").is_file() and (pkg.parent / "setup.py").is_file():
        return checkout                     # a source checkout or an editable install
    return pkg / "shipped_config"           # installed (see setup.py)


def default_data_dir() -> Path:
    env = os.environ.get("TELFILTER_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME")
    if not base or not os.path.isabs(base):     # XDG Base Directory spec: a relative path is invalid, ignored
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "telfilter"


class ConfigError(Exception):
    """One or more config errors, each `path:line:col: message` where the place is known."""

    def __init__(self, errors):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


# telfilter.toml: every table and key it may hold, with the types a value may have
SCHEMA = {
    "engine": {"timezone": (str,), "shortcode": (str, int)},
    "ml": {"enabled": (bool,), "model": (str,), "tag_threshold": (float, int), "drop_threshold": (float, int),
           "skip_registered_senders": (bool,), "score_weight": (float, int), "min_words": (int,)},
}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
               dict: "a table"}
_TOML_POS = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.S)
_KEY_AT = re.compile(r"^\s*([^=\[#\s][^=]*?)\s*=")          # the key of a `key = value` line
_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def toml_error_at(e: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """(line, col, message) of a TOML syntax error in `text`. tomllib says `(at line L, column C)`, or `(at end of
    document)` for a file that ends too soon (an unclosed `[` or string, a key with no value): that is placed at the
    end of the last line that is not blank, where an editor shows it (it was 1:1, or no position at all)."""
    m = _TOML_POS.match(str(e))
    if m:
        ln, col, msg = int(m.group(2)), int(m.group(3)), m.group(1)
        k = _KEY_AT.match(text.split("\n")[ln - 1]) if msg == "Cannot overwrite a value" else None
        if k:       # a key written twice (a `score = 20` added below `score = 15.0`): name it, at its start
            return ln, k.start(1) + 1, f"{k.group(1)} is set twice in its table (a TOML key is set once): {msg}"
        if msg in ("Illegal character '\\n'", "Found invalid character '\\n'"):
            return ln, col, f"{_UNCLOSED}: {msg}"
        if msg == "Unescaped '\\' in a string":
            return ln, col, (f"{msg}: a \"...\" string reads \\ as an escape; write a regex in '...' (a literal "
                             f"string, as the shipped rules do: text_regex = '\\d+') or double each \\")
        return ln, col, msg
    if str(e) == 'Expected "\'" (at end of document)':
        # a '...' string missing its closing quote: tomllib looks for it to the end of the file and says so there
        at = _unclosed_literal(text)
        if at:
            return *at, _UNCLOSED
    end = len(text.rstrip())
    return text.count("\n", 0, end) + 1, end - text.rfind("\n", 0, end), str(e)


_UNCLOSED = "a string is not closed on its line (a \"...\" or '...' string ends on the line it starts: close its quote)"


def _unclosed_literal(text: str) -> tuple[int, int] | None:
    """(line, col) of the quote opening the first '...' string not closed on its line, past comments, "..." strings
    and multi-line ones, or None."""
    multi = None
    for ln, line in enumerate(toml_lines(text), 1):
        i = 0
        while i < len(line):
            if multi:
                j = line.find(multi, i)
                if j < 0:
                    break
                i, multi = j + 3, None
            elif line[i] == "#":
                break
            elif line.startswith(("'''", '"""'), i):
                multi, i = line[i:i + 3], i + 3
            elif line[i] == '"':
                i += 1
                while i < len(line) and line[i] != '"':
                    i += 2 if line[i] == "\\" else 1
                i += 1
            elif line[i] == "'":
                j = line.find("'", i + 1)
                if j < 0:
                    return ln, i + 1
                i = j + 1
            else:
                i += 1
    return None


def read_toml(path: Path) -> tuple[dict, str]:
    """Parse a TOML file; a syntax error is ConfigError `path:line:col: message`."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")   # a BOM (Notepad's UTF-8): no statement
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}:1: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        line, col, msg = toml_error_at(e, text)
        raise ConfigError(f"{path}:{line}:{col}: {msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None


def toml_lines(text: str) -> list:
    """The lines of a TOML text as TOML counts them: ended by \n (or \r\n) only; str.splitlines() also ends one at
    U+2028, U+2029 or NEL, which a comment or string pasted from a web page can hold (every line after it was named
    one too far down)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def key_line(text: str, table: str | None, key: str | None = None) -> int:
    """The line of `key` in `[table]` (or of the table header when key is None); 1 if not found."""
    current, header = None, None
    for i, line in enumerate(toml_lines(text), 1):
        m = _TABLE.match(line)
        if m:
            current = m.group(1).strip().strip('"')
            if current == table and header is None:
                header = i
                if key is None:
                    return i
            continue
        if key is not None and current == table and re.match(rf'^\s*["\']?{re.escape(key)}["\']?\s*=', line):
            return i
    return header or 1


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def well_typed(raw: dict, schema: dict) -> dict:
    """`raw` without what check_schema reports (unknown tables and keys, wrongly typed values): the values a
    loader can still check, so one file's errors are all reported at once."""
    out = {}
    for table, body in raw.items():
        if not isinstance(body, dict) or table not in schema:
            continue
        out[table] = {k: v for k, v in body.items() if (types := schema[table].get(k)) is not None
                      and isinstance(v, types) and (not isinstance(v, bool) or bool in types) and finite(v)}
    return out


def finite(v) -> bool:
    """False for TOML's nan and inf (valid floats there): nan fails every range test by passing it
    (`nan < 1` is false), so a setting of nan would be taken; none of ours means anything infinite."""
    return not isinstance(v, float) or math.isfinite(v)


def _shown(key: str, value) -> str:
    """A wrong value as an error shows it: a password's by its type alone (an SMSC password written unquoted,
    `password = 20261207`, was printed whole into the journal by `config check` and serve's start)."""
    if "password" in key.lower():
        return next((name for t, name in _TYPE_NAMES.items() if type(value) is t), type(value).__name__) + \
            " (the value is not shown: a password)"
    return repr(value)


def check_schema(path: Path, text: str, raw: dict, schema: dict) -> list[str]:
    """Unknown tables and keys and wrongly typed values, each as `path:line:col: message`."""
    errors = []
    for table, body in raw.items():
        if not isinstance(body, dict):          # a key above every [table] header
            known = [k for t in schema.values() for k in t]
            where = next((f"[{t}]" for t in schema if table in schema[t]), None)
            errors.append(f"{path}:{key_line(text, None, table)}:1: key {table!r} outside any table"
                          + (f" (it belongs in {where})" if where else _did_you_mean(table, known)))
            continue
        if table not in schema:
            errors.append(f"{path}:{key_line(text, table)}:1: unknown table [{table}]{_did_you_mean(table, schema)}")
            continue
        for key, value in body.items():
            where = f"{path}:{key_line(text, table, key)}:1"
            types = schema[table].get(key)
            if types is None:
                errors.append(f"{where}: unknown key {key!r} in [{table}]{_did_you_mean(key, schema[table])}")
            elif not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                want = " or ".join(_TYPE_NAMES[t] for t in types)
                got = _shown(key, value)
                errors.append(f"{where}: [{table}] {key} must be {want}, got {got}")
            elif not finite(value):
                errors.append(f"{where}: [{table}] {key} must be a finite number, got {value!r}")
    return errors


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


def config_dir_problem(cdir) -> str | None:
    """Why `cdir` is no config directory, else None."""
    cdir = Path(cdir)
    if cdir.is_dir():
        # `--config CFG/rules`, the directory just edited: it was `CFG/rules/rules:1:1: rules directory does not exist`
        if not (cdir / "telfilter.toml").exists() and not (cdir / "rules").exists() and any(
                p.name not in ("smpp.toml", "sip.toml") and not p.name.startswith(".") for p in cdir.glob("*.toml")):
            return (f"holds rule files (*.toml) but no telfilter.toml or rules/: a rules directory? name the "
                    f"config directory above it ({cdir.absolute().parent})")
        return None
    return ("is a file: name the directory holding telfilter.toml, smpp.toml, sip.toml and rules/"
            if Path(cdir).exists() else "config directory does not exist")


def load_settings(config_dir: Path | None = None) -> Settings:
    """Read and validate `telfilter.toml`; every error at once in one ConfigError."""
    cdir = Path(config_dir) if config_dir else shipped_config_dir()
    why = config_dir_problem(cdir)
    if why:
        raise ConfigError(f"{cdir}: {why}")
    p = cdir / "telfilter.toml"
    raw, text = read_toml(p) if p.exists() else ({}, "")
    errors = check_schema(p, text, raw, SCHEMA)
    # the values are checked too where their type is right: every error at once, not the first table's
    typed = well_typed(raw, SCHEMA)
    eng = typed.get("engine", {})
    ml = typed.get("ml", {})
    s = Settings(config_dir=cdir, raw=raw)
    s.timezone = eng.get("timezone", s.timezone)
    s.shortcode = str(eng.get("shortcode", s.shortcode))
    s.ml_enabled = ml.get("enabled", True)
    s.ml_model = ml.get("model", "")
    if s.ml_model and not Path(s.ml_model).is_absolute():
        # relative to the config directory, never to whatever directory a process runs in: serve under
        # systemd (cwd /) and `ml promote` in an operator's shell must name the same model
        s.ml_model = str((cdir / s.ml_model).absolute())
    s.ml_tag_threshold = ml.get("tag_threshold")
    s.ml_drop_threshold = ml.get("drop_threshold")
    s.ml_skip_registered = ml.get("skip_registered_senders", True)
    s.ml_score_weight = float(ml.get("score_weight", 0.0))
    s.ml_min_words = ml.get("min_words", 4)
    if "shortcode" in eng and not re.fullmatch(r"\d{1,%d}" % SHORTCODE_MAX_DIGITS, s.shortcode):
        # no message is ever addressed to "abc", "" or -1: every DK DNC / HUY DNC / spam report would pass as an
        # ordinary SMS, answered, allowed, and not applied
        errors.append(f"{p}:{key_line(text, 'engine', 'shortcode')}:1: [engine] shortcode must be the short code's "
                      f"digits (1 to {SHORTCODE_MAX_DIGITS}, e.g. \"5656\"), got {eng['shortcode']!r}")
    try:
        s.tz
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{p}:{key_line(text, 'engine', 'timezone')}:1: unknown time zone {s.timezone!r}")
    at = lambda key: f"{p}:{key_line(text, 'ml', key)}:1"
    for key in ("tag_threshold", "drop_threshold"):
        v = ml.get(key)
        if v is not None and not 0.0 <= v <= 1.0:
            errors.append(f"{at(key)}: [ml] {key} is a probability, 0 to 1; got {v}")
    if s.ml_tag_threshold is not None and s.ml_drop_threshold is not None \
            and 0.0 <= s.ml_tag_threshold <= 1.0 and 0.0 <= s.ml_drop_threshold <= 1.0 \
            and s.ml_tag_threshold > s.ml_drop_threshold:
        errors.append(f"{at('tag_threshold')}: [ml] tag_threshold {s.ml_tag_threshold} is above drop_threshold "
                      f"{s.ml_drop_threshold}")
    if s.ml_min_words < 1:
        errors.append(f"{at('min_words')}: [ml] min_words must be at least 1, got {s.ml_min_words}")
    from .rules.rule import MAX_SCORE
    if math.isfinite(s.ml_score_weight) and not 0 <= s.ml_score_weight <= MAX_SCORE:  # (as a rule's score)
        errors.append(f"{at('score_weight')}: [ml] score_weight must be 0 to {MAX_SCORE:.0f}, got "
                      f"{s.ml_score_weight}")
    if errors:
        raise ConfigError(errors)
    return s
