"""What to tell the engineer about a list file a spreadsheet or an editor saved otherwise than the CSV contract
(csvio): which byte is not UTF-8, why a header that is the right one underneath is not."""
from __future__ import annotations


def not_utf8(row: list, names: list) -> str:
    """Which byte of which field is not UTF-8 (read with surrogateescape), as ml train and check --jsonl say it."""
    for field, c in zip(names, row):
        for i, ch in enumerate(c):
            if "\udc80" <= ch <= "\udcff":
                return (f"not valid UTF-8: byte 0x{ord(ch) - 0xDC00:02x} in {field}, character {i + 1} "
                        "(save the file as UTF-8)")
    return "not valid UTF-8 (save the file as UTF-8)"          # in a field past the header's


def header_hint(header: list, want: list) -> str:
    """Why a header that is the right one underneath is not: a spreadsheet's ';' or tab between the cells (Excel's
    CSV where the decimal mark is a comma), or its empty columns after the last. Said, never guessed past."""
    def cells(h):
        h = [c.strip().lower() for c in h]
        return h[:max((i + 1 for i, c in enumerate(h) if c), default=0)]
    for sep, what in ((";", "';'"), ("\t", "tabs")):
        if len(header) == 1 and cells(header[0].split(sep)) == want:
            return f" (its columns are separated by {what}: save the file as CSV UTF-8, comma delimited)"
    if len(header) > len(want) and cells(header) == want:
        return f" ({len(header) - len(want)} empty column(s) after {want[-1]}: delete them and save the file again)"
    return ""
