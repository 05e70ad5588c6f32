"""The numbers of a `--state` URL are ASCII digits and a port is 1-65535: `redis://H:0/0` connected to 6379 (the
default taken for a port 0), `/٣` (an Arabic-Indic three) selected database 3 and `/²` stopped serve and `config
check` with a traceback (int() of a character str.isdigit() accepts). Each is now a URL error (exit 2 in serve)."""
import pytest

from engine.state.embedded import StateError
from engine.state.url import parse_url


@pytest.mark.parametrize("url, says", [
    ("redis://127.0.0.1:0/0", "bad port"),
    ("redis://127.0.0.1:6379/\u00b2", "the database is a number"),
    ("redis://127.0.0.1:6379/\u0663", "the database is a number"),
    ("unix:///tmp/r.sock?db=\u0663", "the database is a number"),
    ("redis+sentinel://127.0.0.1/svc/\u0663", "the database is a number"),
])
def test_a_number_that_is_not_one_is_a_url_error(url, says):
    with pytest.raises(StateError, match=says):
        parse_url(url)


def test_the_numbers_that_are_read():
    c = parse_url("redis://127.0.0.1:6380/15")
    assert (c["port"], c["db"]) == (6380, 15)
    assert parse_url("redis://127.0.0.1/0")["port"] == 6379       # no port: the default
