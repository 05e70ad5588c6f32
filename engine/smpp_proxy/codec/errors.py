"""The codec's two error kinds (after h11): the peer sent something wrong, or our own code
misused the API. Any other exception escaping the codec is a bug."""
from __future__ import annotations


class ProtocolError(Exception):
    pass


class RemoteProtocolError(ProtocolError):
    """The peer sent something wrong. `status` is what to answer with; `command_id` and
    `sequence_number` are what was decoded (None if not even the header was); `fatal`
    means framing is lost and the connection must close."""

    def __init__(self, msg, status, command_id=None, sequence_number=None, fatal=False):
        super().__init__(msg)
        self.status, self.command_id, self.sequence_number, self.fatal = status, command_id, sequence_number, fatal


class LocalProtocolError(ProtocolError):
    """Our own code misused the API (e.g. encoding a value that does not fit)."""


class TextError(ValueError):
    """A text cannot be encoded in the alphabet asked for."""


class UdhError(RemoteProtocolError, TextError):
    """A User Data Header that does not parse (SMPP 3.4 §5.2.12 UDHI set, 3GPP TS 23.040
    §9.2.3.24 layout broken). A RemoteProtocolError: the PDU's sender gets a client-error status."""
