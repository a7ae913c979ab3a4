"""Text that vlcli writes must be valid UTF-8, whatever a file name or an answer holds.

Two kinds of string reach vlcli with lone surrogates, which UTF-8 cannot encode:

* A file name (or an argument) that is not valid UTF-8: Python reads each undecodable byte
  ``0xNN`` as ``U+DCNN`` (``surrogateescape``). Such a name is data: it must keep its bytes.
  In JSON (:func:`json_text`) it is written as the escape ``\\udcNN``, from which
  ``os.fsencode`` gives the original bytes back; a file is opened by its bytes.
* An answer from a server that sent a lone surrogate (``"\\ud83d"`` in its JSON: half of an
  emoji, or garbage). That is text gone wrong, not data: :func:`valid_text` writes each lone
  surrogate as U+FFFD, the replacement character every UTF-8 decoder shows for bytes it cannot
  read, and joins a pair split in two back into its character. The rest of the answer stays,
  and the answer can go everywhere text goes (a terminal, a record, a subtitle file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def json_text(obj: Mapping[str, Any]) -> str:
    """One JSON object as one line of text, UTF-8-encodable: each lone surrogate is written as
    its JSON escape (``\\udcNN``), which loses nothing."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def valid_text(text: str) -> tuple[str, int]:
    """``text`` with split surrogate pairs joined and every lone surrogate replaced by U+FFFD;
    and how many were replaced."""
    if _SURROGATE.search(text) is None:
        return text, 0
    valid = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return valid, valid.count(REPLACEMENT) - text.count(REPLACEMENT)


class ValidPieces:
    """The pieces of a streamed answer made valid as :func:`valid_text` makes the whole, so that
    what is shown is what is recorded: a first half of a pair at the end of a piece waits for
    the next piece, where its second half may be."""

    def __init__(self) -> None:
        self._held = ""

    def piece(self, piece: str) -> str:
        text, self._held = self._held + piece, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        return valid_text(text)[0]

    def rest(self) -> str:
        """What is still held when the stream ends (a half with no other half: U+FFFD)."""
        held, self._held = self._held, ""
        return valid_text(held)[0]
