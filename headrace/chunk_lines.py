"""Lines of a byte stream that arrives in chunks of any size: an uploaded file read back,
an upstream's SSE stream.

    async for line in split_lines(chunks):   # without its b"\\n" (or b"\\r\\n")
        ...

    lines = Lines()                            # the same, where the chunks come one by one
    for line in lines.feed(chunk): ...
    for line in lines.end(): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


class Lines:
    """Each line as soon as its end has arrived, of any length; the last one even without
    a line break after it."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines `chunk` ends."""
        parts = chunk.split(b"\n")
        parts[0] = self._rest + parts[0]  # the line begun in an earlier chunk; this not copied
        self._rest = parts.pop()
        return [part.rstrip(b"\r") for part in parts]

    def end(self) -> list[bytes]:
        """The last line, if the stream did not end with a line break."""
        rest, self._rest = self._rest, b""
        return [rest.rstrip(b"\r")] if rest else []


async def split_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    lines = Lines()
    async for chunk in chunks:
        for line in lines.feed(chunk):
            yield line
    for line in lines.end():
        yield line
