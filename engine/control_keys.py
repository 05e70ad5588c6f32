"""The keys each request of serve's control socket takes (engine/control.py), and their JSON types.

The protocol is strict: a request with a key its command does not take, or a key of another type, is refused
whole (nothing is done) with an error naming the key. Ignored, a misspelt {"cmd": "reload", "parts": ["rules"]}
reloaded every part, the model too. So is a list that names nothing where a command acts on what it names:
{"cmd": "reload", "what": []} reloaded every part (an operator who meant none got all, the model included); every
part is asked for by leaving "what" out (or null). The client (engine/control_client.py) sends only these keys.
"""
from __future__ import annotations

# every command's keys beside "cmd", with the JSON types each may have (null: as if absent)
REQUEST_KEYS: dict[str, dict[str, tuple]] = {
    "stats": {}, "drain": {}, "metrics": {},
    "reload": {"what": (list, type(None)), "full": (bool,)},
    "lists": {"op": (str,), "kind": (str,), "value": (str,), "channel": (str, type(None)), "extra": (list, type(None))},
}
# keys whose list must name something when given (absent or null: the command's default)
NOT_EMPTY = {"reload": ("what",)}
_JSON_TYPE = {str: "a string", list: "a list", bool: "a boolean", type(None): "null", dict: "an object",
              int: "a number", float: "a number"}


def request_error(req: dict) -> str | None:
    """Why a request (a JSON object) is refused before it is run: a key its command does not take, or a key of
    the wrong type. None for an unknown command (handle() answers that)."""
    cmd = req.get("cmd")
    keys = REQUEST_KEYS.get(cmd) if isinstance(cmd, str) else None
    if keys is None:
        return None
    unknown = sorted(k for k in req if k != "cmd" and k not in keys)
    if unknown:
        takes = f"it takes {', '.join(keys)}" if keys else "it takes no other key"
        return f"{cmd}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} ({takes})"
    for k, types in keys.items():
        if k in req and not isinstance(req[k], types):
            want = " or ".join(_JSON_TYPE[t] for t in types)
            return f"{cmd}: key {k!r} is {_JSON_TYPE.get(type(req[k]), type(req[k]).__name__)}, must be {want}"
    for k in NOT_EMPTY.get(cmd, ()):
        if req.get(k) == []:
            return f"{cmd}: key {k!r} is an empty list: name at least one, or leave {k!r} out for the default (all)"
    return None
