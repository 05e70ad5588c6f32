"""How a counter rule's key spec (`key = ["sender", "recipient", "content"]`, a `template` part) becomes the keys of
one message in the counter tables, and how a `distinct` field's value is read (stateful.Counter)."""
from __future__ import annotations

from operator import attrgetter

from .slots import M64 as _M64


# how each key part is read from the message context (one attribute each: a key of several parts
# is read with one attrgetter call, which returns the tuple of parts)
_KEY_PARTS = {"sender": "sender_key", "recipient": "recipient_key", "owner": "owner_key",
              "content": "content", "account": "account"}


# how a `distinct` field's value is read
_VALUES = {
    "sender": attrgetter("sender_key"),
    "recipient": attrgetter("recipient_num"),
    "owner": attrgetter("owner_key"),
}


def _counter_key(parts: tuple):
    """The counter key for one message: the tuple of its parts, or, when every part is an int
    (numbers, the content and template digests), that tuple's stable hash: the tables hash an
    int as itself, so both name the same row (slots.key_hash), and the hash is computed once
    per message instead of at every read and write of every counter with this key spec.
    For a tuple of ints slots.stable_hash is the tuple's own hash (not salted for ints), taken
    here directly; a test holds the two equal."""
    for x in parts:
        if type(x) is not int:
            return parts
    return hash(parts) & _M64


def _key_builder(key: tuple):
    """fn(ctx) -> the message's keys for a key spec (a template key spec gives one key per
    template band of the text, none for a text too short to have one).

    The common specs get a builder of their own: one part (`sender`), or several without
    `template` (`sender+recipient+content`, `owner+recipient`), read with one attrgetter."""
    if "template" not in key:
        if len(key) == 1:
            g = attrgetter(_KEY_PARTS[key[0]])

            def one(c):
                x = g(c)
                return (hash((x,)) & _M64 if type(x) is int else (x,),)
            return one
        g = attrgetter(*(_KEY_PARTS[k] for k in key))

        def several(c):
            parts = g(c)                        # (_counter_key, inline: one call less a message)
            for x in parts:
                if type(x) is not int:
                    return (parts,)
            return (hash(parts) & _M64,)
        return several
    if key == ("template",):                   # SHARED_TEMPLATE's spec: the bands alone
        def bands(c):
            b = c.template_bands
            if len(b) == 1:                     # a text has one template key, or none
                return (hash((b[0],)) & _M64,)
            return tuple([hash((x,)) & _M64 for x in b])
        return bands
    j = key.index("template")
    before = tuple(attrgetter(_KEY_PARTS[k]) for k in key[:j])
    after = tuple(attrgetter(_KEY_PARTS[k]) for k in key[j + 1:])

    def build(c):
        bands = c.template_bands
        if not bands:
            return ()
        pre = tuple([g(c) for g in before])
        post = tuple([g(c) for g in after])
        return tuple(_counter_key(pre + (b,) + post) for b in bands)
    return build
