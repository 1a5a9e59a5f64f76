"""Framing and text hygiene: lines out of a byte stream, lines into bytes, text made safe to show.

TCP is a byte stream: ``recv()`` may return ``"hel"`` and then ``"lo\\n"``, two lines at
once, or half of a Cyrillic letter.  :class:`LineDecoder` puts lines back together from any
chunking and decodes a line only when it is whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENCODING = "utf-8"
MAX_LINE_BYTES = 4096  # longest line a client may send, without its LF

_LF = b"\n"
_CR = 13


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """Yielded once for a line over the limit; the rest of that line is discarded."""

    limit_bytes: int


class LineDecoder:
    """Reassembles UTF-8 lines from a byte stream cut into arbitrary chunks.

    >>> decoder = LineDecoder()
    >>> decoder.feed("при".encode()[:3])   # half of a Cyrillic letter
    []
    >>> decoder.feed("при".encode()[3:] + "вет\\r\\nbye\\n".encode())
    ['привет', 'bye']
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held right now (never above the limit + 1)."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[str | LineTooLong]:
        """Take the next chunk of the stream; return the lines it completes."""
        if self._discarding:
            end = data.find(_LF)
            if end < 0:
                return []
            self._discarding = False
            data = data[end + 1 :]
        last = data.rfind(_LF)
        if last < 0:
            self._partial += data
            return self._check_partial([])
        if self._partial:
            complete = bytes(self._partial) + data[:last]
        else:
            complete = data[:last]
        self._partial = bytearray(data[last + 1 :])
        lines = [self._decode(raw) for raw in complete.split(_LF)]
        return self._check_partial(lines)

    def _decode(self, raw: bytes) -> str | LineTooLong:
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        if len(raw) > self.max_line_bytes:
            return LineTooLong(self.max_line_bytes)
        return raw.decode(ENCODING, "replace")

    def _check_partial(self, lines: list[str | LineTooLong]) -> list[str | LineTooLong]:
        size = len(self._partial)
        # One byte of grace for the CR of a CRLF that has not arrived in full.
        if size > self.max_line_bytes + 1 or (
            size == self.max_line_bytes + 1 and self._partial[-1] != _CR
        ):
            lines.append(LineTooLong(self.max_line_bytes))
            self._partial = bytearray()
            self._discarding = True
        return lines


def bytes_in_letters(limit: int) -> str:
    """A limit in bytes, and what it means in letters: UTF-8 takes 1 byte for a Latin letter, 2 for a Cyrillic one.

    >>> bytes_in_letters(4096)
    '4096 bytes (about 4096 Latin or 2048 Cyrillic letters)'
    """
    return f"{limit} bytes (about {limit} Latin or {limit // 2} Cyrillic letters)"


def encode_line(text: str) -> bytes:
    """One line of text as it goes on the wire."""
    return (text + "\n").encode(ENCODING)


# ---------------------------------------------------------------------------
# Text hygiene: nobody repaints anybody else's terminal
# ---------------------------------------------------------------------------

# Terminal escape sequences are removed whole: CSI (colours, cursor moves),
# OSC (window title, hyperlinks) and DCS/PM/APC strings, in 7-bit and 8-bit form.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]P^_X]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
)
# Characters that control a terminal or reorder text: C0 except TAB, DEL, C1,
# bidi embeddings/overrides/isolates and marks, and line/paragraph separators.
_UNSAFE_CHAR = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
_CONTROL_PICTURES = {code: chr(0x2400 + code) for code in range(0x20) if code != 9}
_CONTROL_PICTURES[0x7F] = "\u2421"  # ␡


def _visible(match: re.Match[str]) -> str:
    return _CONTROL_PICTURES.get(ord(match.group()), "\ufffd")


def sanitize_text(text: str) -> str:
    """Make user text safe to show on a terminal.

    Escape sequences are removed; any other control character is shown as its
    Unicode control picture (``\\r`` becomes ``␍``, ESC ``␛``), and C1 or bidi
    controls as U+FFFD.  Tabs and every printable character are kept.

    >>> sanitize_text("\\x1b[2J\\x1b]0;pwned\\x07hi\\rthere")
    'hi␍there'
    """
    if _UNSAFE_CHAR.search(text) is None:
        return text
    return _UNSAFE_CHAR.sub(_visible, _ESCAPE_SEQUENCE.sub("", text))
