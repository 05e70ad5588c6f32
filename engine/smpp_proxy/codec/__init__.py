"""SMPP 3.4 codec: bytes <-> events, no I/O (imports nothing else from `engine`)."""
from . import constants
from .connection import NEED_DATA, BindState, PduTooLarge, SmppConnection, Window
from .errors import TextError, UdhError
from .pdu import *  # noqa: F401,F403
from .pdu import __all__ as _pdu_all
from .text import concat_info, decode_text, encode_text, pdu_text, split_udh

__all__ = ["constants", "NEED_DATA", "BindState", "PduTooLarge", "SmppConnection", "Window", "TextError", "UdhError",
           "decode_text", "encode_text", "split_udh", "concat_info", "pdu_text"] + _pdu_all
