"""A `--state` option given twice (`?on_error=closed&on_error=open`, a URL template with an option appended): the
last one was taken without a word, so an operator who read `on_error=closed` in the unit file ran fail-open. Now it
is a URL error naming the option (exit 2 in serve and `config check --state`)."""
import pytest

from engine.state.embedded import StateError
from engine.state.url import parse_url


@pytest.mark.parametrize("url, option", [
    ("redis://127.0.0.1:6379/0?on_error=closed&on_error=open", "on_error"),
    ("redis://127.0.0.1:6379/0?timeout=0.5&on_error=open&timeout=2", "timeout"),
    ("unix:///tmp/r.sock?db=1&db=2", "db"),
    ("redis+sentinel://127.0.0.1/svc/0?sentinel_username=a&sentinel_username=b", "sentinel_username"),
])
def test_an_option_given_twice_is_a_url_error(url, option):
    with pytest.raises(StateError, match=f"option '{option}' is given twice"):
        parse_url(url)


def test_each_option_once_is_read():
    c = parse_url("redis://127.0.0.1:6379/0?on_error=closed&timeout=2")
    assert (c["on_error"], c["timeout"]) == ("closed", 2.0)
