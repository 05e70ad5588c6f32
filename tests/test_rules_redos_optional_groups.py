"""Unbounded repeats in a row are refused even when what stands between them is an optional group or
an alternation that can match nothing (`\\d+(-)?\\d+#`, `\\d+(?:\\s|)\\d+x`): the run of digits splits
between the two repeats as with `\\d+\\s?\\d+x`. These were accepted and took 15 s (or more) of one core on
3,000 digits; what stood between the repeats ended the run in redos.adjacent."""
import re
import subprocess
import sys

import pytest

from engine.rules.redos import UnsafeRegex, check

SLOW = [r"\d+(-)?\d+#", r"\d+(?:\.\d{3})?\d+#", r"\d+(?:[ .-]|)\d+#", r"\d+(?:\s|)\d+x",
        r"a*(?:b|)a*(?:b|)a*(?:b|)a*(?:b|)a*!", r"\d+(?:\d*|x)#", r"[0-9]+(?:[ .]|)(?:[0-9]+)?#",
        r"\d+(?>x?)\d+#", r"\d+(?:x?)++\d+#"]
STILL_SAFE = [r"\d+(?:[.,]\d{3})*\s?(?:d|vnd)\b", r"(?:\d+[.,])*\d+ ?(?:k|trieu|tr|d)\b", r"\d+(-)?[a-z]+",
              r"\d+(?:\.\d{3})?(?:k|d)\b", r"\d+(-)?\d+", r"(?:tu choi|tc)?\s*\d+#",
              r"(\w+)\s+\1\s+\w+!"]


@pytest.mark.parametrize("pattern", SLOW)
def test_repeats_around_an_optional_group_are_refused(pattern):
    with pytest.raises(UnsafeRegex):
        check(pattern, re.IGNORECASE)


@pytest.mark.parametrize("pattern", STILL_SAFE)
def test_optional_groups_between_disjoint_repeats_pass(pattern):
    check(pattern, re.IGNORECASE)


def test_the_refused_shape_is_really_slow():
    # the reason for the refusal: 2,000 digits and no '#' hold a core for seconds
    code = "import re; re.search(r'\\d+(-)?\\d+#', '1' * 2000)"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code], timeout=1.5)
