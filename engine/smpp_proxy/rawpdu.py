"""Reading a submit_sm_resp / data_sm_resp straight from its bytes on the SMSC link's hot path
(the edits the proxy makes to forwarded PDUs are the codec's: codec/lean.py)."""
from __future__ import annotations


def resp_message_id(frame: bytes) -> str | None:
    """message_id of a submit_sm_resp / data_sm_resp frame whose body is exactly that one
    C-Octet String (None if it is anything else: such a PDU takes the codec's path)."""
    if len(frame) == 16:
        return ""
    if frame[-1] != 0 or frame.find(0, 16) != len(frame) - 1:
        return None
    return frame[16:-1].decode("latin-1")
