"""Decree 91 short-code commands (MO to 5656), parsed as pure functions.

    DK DNC [S|V]           register the sending number on the DNC list (both channels, or S / V)
    HUY DNC [S|V]          remove it from that channel only (`cancelled`: what it removed, told as it is)
    S <source> <content>   report a spam SMS;  V <source> <content>  report a spam call (the source: a number,
                           or a sender name, i.e. a brandname, see `_named`)
    FW <content>           an advertiser's copy of its advertisement

Matched on the folded text (NFKD, combining marks and zero-width characters removed, Đ/đ -> D,
case-insensitive: `Hủy DNC`, `đk dnc`, full-width `ＤＫ ＤＮＣ`), whitespace-insensitive, trailing
punctuation ignored (`DK DNC.`); channel S, V, SV or VS (as the DNC CSV accepts), anything else
is an error. A reported number may be written in digit groups (`S 0912 345 678 ...`,
`S +84 912345678 ...`) or in brackets as Circular 22/2021 writes a report (`S (0912345678)(content)`). `parse()` returns a `Command`; applying it (DNC change, report append)
is the pipeline's job, after the verdict.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..numbers import format_number, is_shortcode, normalise_number, subscriber_problem
from ..textnorm import fold
from .shortcode_number import (_BRACKETED, _NUMBER_END, _PAIRS, _TOKEN, _bracketed, _glued, _reported, _spaced,
                               _unwrapped, _vn_subscriber)

_DNC = re.compile(r"(DK|HUY)DNC(S|V|SV|VS)?")
_CHANNEL = {None: "SV", "S": "S", "V": "V", "SV": "SV", "VS": "SV"}
# A sender name (brandname) as a report's source ("nguồn phát tán" is a number or a name): a registered one as
# written (up to _NAME_WORDS words), else one word shaped like an alphanumeric originator (GSM: at most 11
# characters; a letter in it): in capitals unbracketed ("S VAYNHANH ..."), in any case in brackets ("S (Vaytien)(...)")
_NAME_WORDS = 3
_NAME_END = ",;:!?"             # what ends a name with its content right after it; a dot is part of one (FPT.SHOP)
_SHOUTED = re.compile(r"(?=[A-Z0-9&._-]*[A-Z])[A-Z0-9][A-Z0-9&._-]{2,10}")
# One Vietnamese syllable written without marks (an initial, a vowel cluster, a final): "VAY", "TIN", "NHANH", "HUY"
# typed in capitals start a report's content ("S VAY TIEN NHANH ..."), not a sender's name; a name is not one
# syllable (VCB, VAYNHANH, SHOPEE, GO2JOY) or is registered. And the words reports are about.
_VI_SYLLABLE = re.compile(r"(?:NGH|NG|GH|GI|KH|NH|PH|QU|TH|TR|CH|[BCDGHKLMNPRSTVX])?[AEIOUY]{1,3}(?:NG|NH|CH|[CMNPT])?")
_NOT_NAMES = frozenset({"SMS", "SDT", "SPAM", "OTP", "DNC", "QC", "CSKH", "MMS", "URL", "LINK", "WEB", "APP"})
_NAMED = re.compile(r"(?=[A-Za-z0-9&._-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9&._-]{0,10}")


@dataclass(frozen=True)
class Command:
    # DNC_REGISTERED | DNC_CANCELLED | SPAM_REPORTED | AD_COPY_RECEIVED | SHORTCODE_SYNTAX_ERROR; a HUY DNC is
    # DNC_CANCELLED here (what was asked), and what it did once in force (`cancelled`)
    symbol: str
    detail: str
    op: str | None = None            # "dnc_add" | "dnc_remove" | "report"
    channel: str | None = None
    reported: int | None = None
    reported_name: str | None = None   # a sender name reported instead of a number (never indexed, see parse)
    kind: str | None = None          # S | V | FW
    content: str = ""


def _squash(text: str) -> str:
    """The folded, upper-cased text without whitespace, trailing punctuation or the quotes and brackets it opens
    with: what a DNC command is matched against ("Hủy  DNC s." -> "HUYDNCS", '"DK DNC"' -> "DKDNC")."""
    t = "".join(fold(text).split()).upper()
    if not t.isprintable():
        # NUL padding an SMSC left in short_message, other controls, and the invisible format characters fold
        # keeps: direction marks and embeddings (U+200E/F, U+202A-E, U+2066-9, U+061C) a right-to-left keyboard
        # or handset adds ("DK DNC" + RLM was a syntax error, the registration lost)
        t = "".join(c for c in t if unicodedata.category(c) not in ("Cc", "Cf"))
    end = len(t)
    while end and unicodedata.category(t[end - 1])[0] == "P":
        end -= 1
    # the quotes or brackets a copied instruction put round it (Soạn "DK DNC" gửi 5656): only the closing one was
    # ignored, '"DK DNC"' a syntax error; any other punctuation before it (".DK DNC") still makes one
    start = 0
    while start < end and (t[start] in "\"'" or unicodedata.category(t[start]) in ("Pi", "Ps")):
        start += 1
    return t[start:end]


def _name_run(text: str, first, known) -> tuple[str | None, int]:
    """The sender name starting at token `first`: the longest run of up to _NAME_WORDS words one space apart that
    `known` (the registry) holds, else the first word alone when it is shaped like a name written in capitals;
    (None, 0) when neither. Trailing punctuation ends a name as it ends a number ("S VCB, lua dao")."""
    words: list[tuple[str, int]] = []
    m = first
    while m is not None and len(words) < _NAME_WORDS:
        word, end = _glued(m, _NAME_END)              # "VCB,lua dao": the comma ends the name (a dot: FPT.SHOP)
        words.append((word, end))
        if word != word.rstrip(_NUMBER_END):
            break
        nxt = _TOKEN.search(text, m.end())
        if not _spaced(text, m, nxt):
            break
        m = nxt
    if known is not None:
        for k in range(len(words), 0, -1):
            name = " ".join(w for w, _ in words[:k]).rstrip(_NUMBER_END)
            if name and known(fold(name)):
                return name, words[k - 1][1]
    name = words[0][0].rstrip(_NUMBER_END)
    return (name, words[0][1]) if _shouted(name) else (None, 0)


def _shouted(name: str) -> bool:
    """Whether `name` is one word in capitals shaped like an alphanumeric originator, full-width too ("ＶＣＢ"), of
    at least 3 characters, neither one Vietnamese syllable ("S VAY TIEN NHANH ...": the content, not sender VAY) nor
    a word reports are about (SMS, SPAM, QC ...). Not a word with Vietnamese marks: no brandname has one, and
    "S LỪA ĐẢO ..." is a report without its source."""
    n = unicodedata.normalize("NFKC", name)
    return _SHOUTED.fullmatch(n) is not None and _VI_SYLLABLE.fullmatch(n) is None and n not in _NOT_NAMES


def _named(text: str, first, known) -> tuple[str | None, str]:
    """A report's source written as a sender name at token `first` (no number parsed there), and its content:
    "S VCB noi dung", "S FE CREDIT noi dung" (registered), "S [Vaytien][noi dung]", "S (VCB lua dao)";
    (None, "") when it is none."""
    opener = text[first.start()]
    if opener not in _PAIRS:
        name, end = _name_run(text, first, known)
        return (name, text[end:].strip()) if name else (None, "")
    m = _BRACKETED.match(text, first.start())
    if m is not None:                               # "(FE CREDIT)(noi dung)", "[VCB] noi dung"
        name = " ".join(m.group(1).split())
        if _NAMED.fullmatch(unicodedata.normalize("NFKC", name)) or (known is not None and known(fold(name))):
            return name, _unwrapped(text[m.end():].strip())
    inner = _inside(text, first)                    # one bracket round the name and the content
    if inner is None:
        return None, ""
    name, end = _name_run(text, inner, known)
    if name is None:
        return None, ""
    return name, _unbracketed_tail(text[end:].strip(), opener)


def _inside(text: str, first):
    """The token that starts right after the bracket token `first` opens with ("(0912" -> "0912"), else None."""
    inner = _TOKEN.search(text, first.start() + 1)
    return inner if inner is not None and inner.start() == first.start() + 1 else None


def _number_first(content: str) -> tuple[int | None, str]:
    """A whole subscriber number that `content` (a report's, after a sender name) starts with, and the rest;
    (None, content) when it starts with none."""
    tok = _TOKEN.search(content)
    if tok is None:
        return None, content
    n, _, end = _reported(content, tok)
    if n is None or not _vn_subscriber(n, "".join(content[tok.start():end].split())):
        return None, content
    return n, content[end:].strip()


_WORDS_BEFORE = 4              # words a subscriber may write before the number ("so dien thoai cua")


def _words_before_number(text: str, first) -> tuple[str | None, str]:
    """(the words, the rest from the first token with a digit on) when one to _WORDS_BEFORE words without digits
    come before such a token at token `first` (whether it starts a whole subscriber number is the caller's
    _number_first); (None, "") otherwise."""
    words, m = [], first
    while m is not None:
        if any(c.isdigit() for c in m.group()) or m.group()[:1] == "+":
            return (" ".join(words), text[m.start():]) if words else (None, "")
        if len(words) == _WORDS_BEFORE:
            return None, ""
        words.append(m.group())
        m = _TOKEN.search(text, m.end())
    return None, ""


def _unbracketed_tail(content: str, opener: str) -> str:
    """The content of a report whose bracket opened before its source ("(0912 345 678. Lua dao)"): without the
    closing bracket that ends it, when nothing inside opened another."""
    if content.endswith(_PAIRS[opener]) and opener not in content:
        return content[:-1].rstrip()
    return content


# The channel a DNC hit's detail ends with ("... removed from DNC S"): the reply names it (smpp_proxy/routing.py)
# and the regulator's report counts by it (report/aggregate.py reads the same ending)
_DETAIL_CHANNEL = re.compile(r"DNC (SV|S|V)$")


def detail_channel(detail: str) -> str | None:
    m = _DETAIL_CHANNEL.search(detail)
    return m.group(1) if m else None


def cancelled(number: int, asked: str, on: str) -> tuple[str, str]:
    """The symbol and detail of a HUY DNC for channel(s) `asked` ("S", "V", "SV") from `number`, which was on
    the list for `on` (the same letters, "" for neither) when it was put in force: what it removed, or that it
    removed nothing. A subscriber is told the truth: never "cancelled" for a channel they were not on."""
    who = format_number(number)
    removed = "".join(c for c in asked if c in on)
    if not removed:
        return "DNC_NOT_REGISTERED", f"nothing changed: {who} not on DNC {asked}"
    if removed != asked:                 # HUY DNC (both) from a number on one channel only
        return "DNC_CANCELLED", f"{who} not on DNC {asked.replace(removed, '')}; removed from DNC {removed}"
    return "DNC_CANCELLED", f"{who} removed from DNC {removed}"


def addressed_to(raw: str, code: str, code_num: int | None, raw_num: int | None = None) -> bool:
    """Whether a message to `raw` (the destination as written) is for the short code `code`
    (`code_num` its normalised int): written as it is, or in any form that normalises to it
    ("05656", "+5656", "5656 "). The pipeline and the SMPP proxy ask the same question, so a
    command is applied only where it is also answered as one."""
    if code_num is None:
        return False
    if raw.strip().lstrip("+") == code:
        return True
    return (raw_num if raw_num is not None else normalise_number(raw)) == code_num


def _unframed(t: str) -> str:
    """`t` without the invisible format characters (category Cf: BOM, zero-width, direction marks and embeddings)
    before its first and after its last visible one: a report or FW that an RTL keyboard began with U+200F was
    no command ("\u200fS 0912… …" read the kind as "\u200fS"). Tag characters (U+E0000-E007F, Cf too) are kept:
    they end a flag emoji's sequence (🏴 + tags = the flag of Scotland) a report's content may end with."""
    i, j = 0, len(t)
    while i < j and _invisible(t[i]):
        i += 1
    while j > i and _invisible(t[j - 1]):
        j -= 1
    return t[i:j] if i or j < len(t) else t


def _invisible(c: str) -> bool:
    return c.isspace() or (unicodedata.category(c) == "Cf" and not "\U000e0000" <= c <= "\U000e007f")


def _kind(token: str) -> str:
    """A report's first word as matched ("S", "V"): folded, upper-cased, without format characters ("S" + RLM)."""
    k = fold(token).upper()
    return k if k.isprintable() else "".join(c for c in k if unicodedata.category(c) != "Cf")


def _fw_content(t: str, k) -> str | None:
    """The content of an FW (an advertiser's copy of its ad) whose first token is `k`, matched as the commands are
    (any case or width: "ＦＷ ..."), a colon after FW too, as a mail client writes a forward ("Fw: ...", "FW:...");
    "" when it has none, None when `k` is no FW."""
    if k is None:
        return None
    word = _kind(k.group())
    if word in ("FW", "FW:"):
        rest = t[k.end():].strip()
        return rest[1:].strip() if word == "FW" and rest[:1] in (":", "\uff1a") else rest
    if word.startswith("FW:"):
        # (the character the colon is in: one may fold to more than it, '\u2a74' to '::=')
        colon = next((i for i, c in enumerate(k.group()) if ":" in fold(c)), None)
        return None if colon is None else t[k.start() + colon + 1:].strip()
    return None


def _report_start(t: str, k):
    """The kind (S or V) of a report whose first token is `k`, and its source's first token; (None, None) when it
    is no report. The source may follow without a space ("S0912345678 ...", "S(0912345678)(...)"), as "DKDNC" is
    a registration: a digit, '+' or a bracket right after the S or V."""
    if k is None:
        return None, None
    kind = _kind(k.group())
    if kind in ("S", "V"):
        return kind, _TOKEN.search(t, k.end())
    head, nxt = _kind(k.group()[0]), fold(k.group()[1:2])[:1]
    if head in ("S", "V") and nxt and (nxt.isdigit() or nxt in "+(["):
        return head, _TOKEN.search(t, k.start() + 1)
    return None, None


def parse(text: str, sender_num: int | None, known=None) -> Command:
    """The command `text` from `sender_num` (None: not a number) makes. `known(name) -> bool`: whether the
    brandname registry holds a sender name (a report may name one as its source); None: no registry."""
    t = _unframed((text or "").strip("\x00"))    # NUL padding (C-string short_message) is not content
    squashed = _squash(t)
    m = _DNC.fullmatch(squashed)
    if m:
        if sender_num is None or is_shortcode(sender_num):
            # the DNC list holds subscriber numbers only (as `lists import` requires): not a name, not a short code
            return Command("SHORTCODE_SYNTAX_ERROR", "DNC command from a sender that is not a subscriber number")
        ch = _CHANNEL[m.group(2)]
        who = format_number(sender_num)
        why = subscriber_problem(sender_num) if m.group(1) == "DK" else None
        if why:
            # as `lists import dnc` refuses the row (an export holding it could not be imported back); a HUY still
            # removes such a number, which a list an earlier version wrote may hold
            return Command("SHORTCODE_SYNTAX_ERROR", f"DNC command from {who}: not a subscriber number: {why}")
        if m.group(1) == "DK":
            return Command("DNC_REGISTERED", f"{who} added to DNC {ch}", "dnc_add", ch)
        return Command("DNC_CANCELLED", f"{who} removed from DNC {ch}", "dnc_remove", ch)
    k = _TOKEN.search(t)
    kind, first = _report_start(t, k)
    if first is not None:
        n, written, end = _reported(t, first)
        content = t[end:].strip()
        if t[first.start()] in _PAIRS:
            bn, bcontent, whole = _bracketed(t, first.start())
            # the source in brackets when they hold a whole number ("(024 3999 8888)(...)" read as 24 before), or
            # any number when nothing else parsed ("(8077)(...)"); an area code's ("(098) 7654321") is not one
            if bn is not None and (n is None or whole):
                n, content = bn, bcontent
            elif _PAIRS[t[first.start()]] not in first.group():
                # a bracket round the number and the content both ("S (0912 345 678. Lua dao)"): the number read
                # after the bracket (it was read as "(0912", 912, the content "345 678. Lua dao)")
                inner = _inside(t, first)
                bn, _, bend = _reported(t, inner) if inner is not None else (None, "", 0)
                if bn is not None and (_vn_subscriber(bn, t[inner.start():bend]) or n is None or n == bn):
                    # a whole number, or the one the token gave anyway ("S (8077 trung thuong)": 8077, the content
                    # "trung thuong", not "trung thuong)")
                    n, content = bn, _unbracketed_tail(t[bend:].strip(), t[first.start()])
            elif n is not None:                   # "S (0912345678) (vay tien)": the content in brackets too
                content = _unwrapped(content)
        if n is None:
            name, content = _named(t, first, known)
            words = name is None
            if words:
                # a few words before the number ("S so 0912345678 ...", "S QC +84 912345678", "S TIN NHAN RAC 0912…"):
                # the number is the source, the words kept in the content
                name, content = _words_before_number(t, first)
            n, rest = _number_first(content) if name is not None else (None, "")
            if n is None and words:
                return Command("SHORTCODE_SYNTAX_ERROR", f"report: {written!r} is not a phone number or a sender name")
            if n is not None:
                # "S VIETTEL 0912345678 lua dao": the number that used the name is the source (counted), the name
                # kept in the content; it was a report against sender VIETTEL, the number never counted
                return Command("SPAM_REPORTED", f"{kind} report against {format_number(n)}", "report",
                               reported=n, kind=kind, content=f"{name} {rest}".rstrip())
            # recorded, never counted toward `reported`: reports naming a brand would stop its own messages (a bank's
            # OTPs), and its look-alikes sent from fake base stations never pass the SMSC
            return Command("SPAM_REPORTED", f"{kind} report against sender {name}", "report",
                           reported_name=name, kind=kind, content=content)
        return Command("SPAM_REPORTED", f"{kind} report against {format_number(n)}", "report",
                       reported=n, kind=kind, content=content)
    fw = _fw_content(t, k)
    if fw:
        return Command("AD_COPY_RECEIVED", "advertisement copy stored", "report", kind="FW", content=fw)
    if squashed.startswith(("DK", "HUY")):
        return Command("SHORTCODE_SYNTAX_ERROR", f"unknown command {t.strip()[:40]!r}; use DK DNC [S|V] or HUY DNC [S|V]")
    if fw is not None:
        return Command("SHORTCODE_SYNTAX_ERROR", "FW needs the advertisement text: FW <content>")
    if squashed.startswith("FW"):
        # another word ("Fwd: [QC] ...", "FW.[QC] ..."), its text there: it was said to lack the text
        return Command("SHORTCODE_SYNTAX_ERROR",
                       f"unknown command {t.strip()[:40]!r}; an advertisement copy is FW <content>")
    return Command("SHORTCODE_SYNTAX_ERROR",
                   f"unparseable command {t.strip()[:40]!r}; use DK DNC [S|V], HUY DNC [S|V], S <number or sender> <content>, V <number or sender> <content> or FW <content>")
