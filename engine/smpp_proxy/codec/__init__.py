"""SMPP 3.4 codec: bytes <-> events, no I/O (imports nothing else from `engine`).

    connection.py  SmppConnection (feed bytes, get PDUs; lean=True yields SmViews for
                   submit_sm / deliver_sm), BindState, Window
    pdu.py         the PDUs as frozen dataclasses, decode / encode, answer_for(error)
    fields.py      SMPP 3.4 field sizes and the status that refuses each; smpp_time (§7.1.1 times)
    lean.py        the hot path: one-pass SmView, raw edits (sequence, TLV, text prefix)
    udh.py         UDH / SAR / message_payload checks, concatenation info
    text.py        text by data_coding, with the per-account reading for 0 / 1
    binary.py      URLs in binary payloads (WAP push SI / SL, plain ASCII)
    v33.py         PDUs as an SMPP 3.3 peer (interface_version < 0x34) is sent them: no TLVs, no data_sm
    errors.py      RemoteProtocolError (carries the status to answer with), LocalProtocolError
"""
from . import constants
from .binary import binary_urls, pdu_urls, readable_text
from .connection import NEED_DATA, BindState, PduTooLarge, SmppConnection, Window
from .errors import TextError, UdhError
from .fields import smpp_time
from .lean import SmView, append_tlv, encode_prefix, prefix_user_data, view_sm, without_tlv
from .pdu import *  # noqa: F401,F403
from .pdu import __all__ as _pdu_all
from .text import READINGS, decode_text, encode_text, pdu_reading, pdu_text, read_text
from .udh import concat_info, pdu_concat, pdu_user_data, split_udh

__all__ = ["constants", "NEED_DATA", "BindState", "PduTooLarge", "SmppConnection", "Window", "TextError", "UdhError",
           "decode_text", "encode_text", "split_udh", "concat_info", "pdu_text", "READINGS", "read_text", "pdu_reading",
           "pdu_concat", "pdu_user_data", "binary_urls", "pdu_urls", "readable_text", "SmView", "view_sm", "append_tlv", "without_tlv",
           "prefix_user_data", "encode_prefix", "smpp_time"] + _pdu_all
