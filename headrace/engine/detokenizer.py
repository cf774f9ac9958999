"""Incremental detokenisation that is UTF-8 safe and stop-string aware.

Text is released only when it can no longer change: a trailing partial UTF-8 character
(decoded as U+FFFD) waits for its next byte, and a tail that could still grow into a stop
string waits until it cannot. So a client never sees text that a stop string later removes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

_REPLACEMENT = "\ufffd"
# Re-decoding a short window of recent tokens instead of the whole output keeps each step
# O(window); byte-level BPE needs a few tokens of context to decode a character correctly.
_CONTEXT_TOKENS = 6


class IncrementalDetokenizer:
    __slots__ = (
        "_decode",
        "_emitted",
        "_ids",
        "_max_stop",
        "_prefix_offset",
        "_read_offset",
        "_stops",
        "_text",
        "stopped",
    )

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stops = tuple(s for s in stop if s)
        self._max_stop = max((len(s) for s in self._stops), default=0)
        self._ids: list[int] = []
        self._prefix_offset = 0  # ids before this are settled context
        self._read_offset = 0  # ids before this are already in _text
        self._text = ""  # all settled text so far
        self._emitted = 0  # chars of _text already released
        self.stopped = False  # a stop string matched; nothing more will be released

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became safe to release (maybe empty)."""
        if self.stopped:
            return ""
        self._ids.append(token_id)
        if not self._absorb(final=False):
            return ""  # an incomplete UTF-8 sequence: wait for more bytes
        return self._release(final=False)

    def flush(self) -> str:
        """The generation ended: release whatever was held back, partial characters too."""
        if self.stopped:
            return ""
        self._absorb(final=True)
        return self._release(final=True)

    def _absorb(self, *, final: bool) -> bool:
        """Move newly decodable tokens into the settled text; False while incomplete."""
        if self._read_offset == len(self._ids):
            return True
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        if not final and (full.endswith(_REPLACEMENT) or len(full) < len(prefix)):
            return False
        self._text += full[len(prefix) :]
        self._prefix_offset = max(self._read_offset - _CONTEXT_TOKENS, 0)
        self._read_offset = len(self._ids)
        return True

    @property
    def text(self) -> str:
        """All text released so far, after stop truncation."""
        return self._text[: self._emitted]

    def _release(self, *, final: bool) -> str:
        start = max(self._emitted - self._max_stop + 1, 0)
        cut = self._first_stop(start)
        if cut is not None:
            self.stopped = True
            self._text = self._text[:cut]
            end = cut
        elif final:
            end = len(self._text)
        else:
            end = len(self._text) - self._held_suffix()
        end = max(end, self._emitted)
        out = self._text[self._emitted : end]
        self._emitted = end
        return out

    def _first_stop(self, start: int) -> int | None:
        hits = [i for s in self._stops if (i := self._text.find(s, start)) >= 0]
        return min(hits) if hits else None

    def _held_suffix(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        text = self._text
        for n in range(min(self._max_stop - 1, len(text)), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0
