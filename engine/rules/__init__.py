"""Rule files: the condition vocabulary, the loader, plans, the stateful counters.

`conditions` is imported first, here: it registers the conditions of `textconds` and `stateful`
in their place in its CONDITIONS manifest, and those two import their helpers from it, so
importing either of them on its own (a test, a what-if tool) must find `conditions` initialised.
"""
from . import conditions  # (import order; see above)

__all__ = ["conditions"]
