"""Rule-file text: read it safely, and find where each key is written.

`read_rule_text` refuses what no rule file is (binary, not UTF-8, huge, nested deeper than
any rule needs) before tomllib sees it, so a hostile file gives `path:line:col: message`
instead of a traceback or a stack overflow. `Locator` maps TOML keys back to positions,
which tomllib does not give.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from ..config import toml_lines


@dataclass
class RuleError:
    path: str
    line: int
    col: int
    message: str

    def __str__(self):
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


MAX_FILE_BYTES = 4 << 20
MAX_NESTING = 32


def read_rule_text(f: Path, disp: str, errors: list) -> str | None:
    """The file as text, or None with the reason appended to `errors` (binary, not UTF-8,
    unreadable, too large or nested deeper than any rule file needs)."""
    try:
        data = f.read_bytes()
    except OSError as e:
        errors.append(RuleError(disp, 1, 1, f"cannot read: {e.strerror or e}"))
        return None
    if len(data) > MAX_FILE_BYTES:
        errors.append(RuleError(disp, 1, 1, f"file is {len(data)} bytes; a rule file may have at most {MAX_FILE_BYTES}"))
        return None
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")     # a BOM (Notepad's UTF-8) is no TOML statement
    except UnicodeDecodeError as e:
        nul = e.start if nul < 0 else min(nul, e.start)
    if nul >= 0:
        ln = data.count(b"\n", 0, nul) + 1
        col = nul - (data.rfind(b"\n", 0, nul) + 1) + 1
        errors.append(RuleError(disp, ln, col, "not a text file (a NUL byte or invalid UTF-8): rule files are UTF-8 TOML"))
        return None
    where = _too_deep(text)
    if where is not None:
        errors.append(RuleError(disp, *where, f"arrays/inline tables nested more than {MAX_NESTING} levels deep"))
        return None
    return text


def _too_deep(text: str):
    """(line, col) where `[`/`{` nesting inside values passes MAX_NESTING, else None. A cheap
    scan that skips strings and comments (tomllib would recurse until the interpreter's limit)."""
    depth, ln, col0, i, n = 0, 1, 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            ln, col0 = ln + 1, i + 1
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch in "\"'":
            q = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else ch
            j = i + len(q)
            while True:
                k = text.find(q, j)
                if k < 0:
                    return None             # unterminated: tomllib reports it with its position
                if q[0] == '"' and _escaped(text, k):
                    j = k + 1
                    continue
                break
            ln += text.count("\n", i, k)
            if "\n" in text[i:k]:
                col0 = text.rfind("\n", i, k) + 1
            i = k + len(q)
            continue
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return ln, i - col0 + 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None


def _escaped(text: str, k: int) -> bool:
    b = 0
    while k - 1 - b >= 0 and text[k - 1 - b] == "\\":
        b += 1
    return b % 2 == 1


def _open_string(line: str, inside: str | None) -> str | None:
    """The multi-line string delimiter (three double or three single quotes) still open after `line`, given the one
    open before it (None: none)."""
    i, n = 0, len(line)
    while i < n:
        if inside is not None:                      # find its end: the last three of a run of quotes
            k = line.find(inside, i)
            while k >= 0 and inside[0] == '"' and _escaped(line, k):
                k = line.find(inside, k + 1)
            if k < 0:
                return inside
            i = k + 3
            while i < n and line[i] == inside[0]:
                i += 1
            inside = None
            continue
        ch = line[i]
        if ch == "#":
            return None
        if line.startswith(('"""', "'''"), i):
            inside, i = line[i:i + 3], i + 3
            continue
        if ch in "\"'":                            # a one-line string: skip to its end
            k = line.find(ch, i + 1)
            while k >= 0 and ch == '"' and _escaped(line, k):
                k = line.find(ch, k + 1)
            i = n if k < 0 else k + 1
            continue
        i += 1
    return inside


class Locator:
    """Maps (rule index, key path) to (line, col) by scanning the TOML text.

    tomllib gives no positions, so this reads the lines itself: table headers set the
    current path, `key =` lines (and keys inside one-line inline tables) record theirs.
    """
    _HDR = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r'^\s*((?:[A-Za-z0-9_-]+|"[^"]*")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"))*)\s*=')

    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0]          # the text offset of each line's first character
        for line in text.split("\n")[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.pos: dict = {}
        self.rule_lines: list = []
        rule = -1
        path: tuple = ()
        counters: dict = {}
        inside = None               # the delimiter of a multi-line string open at the start of the line
        for ln, line in enumerate(toml_lines(text), 1):        # (not splitlines(): see toml_lines)
            was, inside = inside, _open_string(line, inside)
            if was is not None:     # a line of a string's text (`[QC]`, `score = 5`, `[[rule]]`) is no TOML
                continue
            m = self._HDR.match(line)
            if m and not self._KEY.match(line):
                parts = tuple(p.strip().strip('"') for p in m.group(2).split("."))
                col = line.index(m.group(2)) + 1
                if parts == ("rule",) and m.group(1) == "[[":
                    rule += 1
                    self.rule_lines.append(ln)
                    path = ()
                    counters = {}
                    self.pos[(rule, ())] = (ln, col)
                elif parts[0] == "rule":
                    path = parts[1:]
                    if m.group(1) == "[[":
                        counters[path] = counters.get(path, -1) + 1
                        path = path + (counters[path],)
                    self.pos[(rule, path)] = (ln, col)
                else:
                    path = ("@",) + parts
                    self.pos[(None, path)] = (ln, col)
                continue
            m = self._KEY.match(line)
            if m:
                keys = tuple(k.strip().strip('"') for k in m.group(1).split("."))
                r = None if path[:1] == ("@",) else rule
                self.pos[(r, path + keys)] = (ln, line.index(m.group(1)) + 1)
                vcol = m.end() + 1 + (len(line[m.end():]) - len(line[m.end():].lstrip()))
                self.pos[(r, path + keys + ("=",))] = (ln, vcol)
                # keys inside a one-line inline table: `counter = { key = [...], window = "24h" }`
                for im in re.finditer(r"[{,]\s*([A-Za-z0-9_]+)\s*=", line[m.end():]):
                    self.pos.setdefault((r, path + keys + (im.group(1),)), (ln, m.end() + im.start(1) + 1))

    def string_char(self, rule, path: tuple, item: int | None, char: int, length: int):
        """(line, col) of character `char` of the string value at `path` (of the `item`th string of its array when
        item is not None), whose value is `length` characters long; None where it cannot be followed (a value in
        an inline table, or text that does not decode to `length` characters)."""
        if (rule, path + ("=",)) not in self.pos:
            return None
        ln, col = self.pos[(rule, path + ("=",))]
        offs = _item_offsets(self.text, self.line_starts[ln - 1] + col - 1, item)
        if offs is None or len(offs) != length + 1 or not 0 <= char <= length:
            return None
        o = offs[char]
        ln = bisect_right(self.line_starts, o)
        return ln, o - self.line_starts[ln - 1] + 1

    def at(self, rule, *path, value=False):
        p = tuple(path) + (("=",) if value else ())
        while True:
            if (rule, p) in self.pos:
                return self.pos[(rule, p)]
            if not p:
                return (1, 1)
            p = p[:-1]


_ESCAPE_LEN = {"u": 5, "U": 9}       # the characters after a basic string's backslash: \uXXXX, \UXXXXXXXX, else one


def string_offsets(text: str, start: int) -> list | None:
    """The text offset of each character of the TOML string that opens at text[start], then of its closing quote;
    None when no string opens there. An escape of a basic string ("...", \"\"\"...\"\"\") is at its backslash;
    a literal string ('...', '''...''') maps one to one; a multi-line string's first newline and a line-ending
    backslash's run of blanks give no character (TOML 1.0 "String")."""
    q = text[start:start + 3] if text.startswith(('"""', "'''"), start) else text[start:start + 1]
    if q not in ('"', "'", '"""', "'''"):
        return None
    basic, multi, n = q[0] == '"', len(q) == 3, len(text)
    i = start + len(q)
    if multi:
        i += 2 if text.startswith("\r\n", i) else 1 if text.startswith("\n", i) else 0
    out: list = []
    while i < n:
        if text.startswith(q, i):
            run = len(q)
            while multi and run < 5 and text.startswith(q[0], i + run):
                run += 1        # up to two quotes before the closing three are the string's
            out.extend(range(i, i + run - len(q)))
            out.append(i + run - len(q))
            return out
        ch = text[i]
        if ch == "\n" and not multi:
            return None
        if basic and ch == "\\":
            e = text[i + 1:i + 2]
            if multi and e in (" ", "\t", "\r", "\n"):      # a line-ending backslash
                i += 1
                while i < n and text[i] in " \t\r\n":
                    i += 1
                continue
            out.append(i)
            i += 1 + _ESCAPE_LEN.get(e, 1)
            continue
        out.append(i)
        i += 2 if text.startswith("\r\n", i) else 1     # (read as one "\n")
    return None


def _item_offsets(text: str, start: int, item: int | None) -> list | None:
    """string_offsets of the value at text[start] (item None) or of the `item`th string of the array there."""
    if item is None:
        return string_offsets(text, start)
    if not text.startswith("[", start):
        return None
    i, k, n = start + 1, 0, len(text)
    while i < n:
        if text[i] in " \t\r\n,":
            i += 1
            continue
        if text[i] == "#":
            i = text.find("\n", i)
            if i < 0:
                return None
            continue
        offs = string_offsets(text, i)
        if offs is None or k == item:
            return offs
        i = offs[-1] + (3 if text.startswith(('"""', "'''"), i) else 1)
        k += 1
    return None
