"""SMPP 3.4 codec: bytes <-> events, no I/O (imports nothing else from `engine`)."""
from . import constants
from .connection import NEED_DATA, BindState, PduTooLarge, SmppConnection, Window
from .errors import TextError, UdhError
from .pdu import *  # noqa: F401,F403
from .pdu import __all__ as _pdu_all
from .binary import binary_urls, pdu_urls, readable_text
from .text import READINGS, concat_info, decode_text, encode_text, pdu_reading, pdu_text, read_text, split_udh

__all__ = ["constants", "NEED_DATA", "BindState", "PduTooLarge", "SmppConnection", "Window", "TextError", "UdhError",
           "decode_text", "encode_text", "split_udh", "concat_info", "pdu_text", "READINGS", "read_text", "pdu_reading",
           "binary_urls", "pdu_urls", "readable_text"] + _pdu_all
