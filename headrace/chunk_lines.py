"""Lines of a byte stream that arrives in chunks of any size: an uploaded file read back,
an upstream's SSE stream.

    async for line in split_lines(chunks):   # without its b"\\n" (or b"\\r\\n")
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def split_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Each line as soon as its end has arrived, of any length; the last one even without
    a line break after it."""
    rest = b""
    async for chunk in chunks:
        parts = chunk.split(b"\n")
        parts[0] = rest + parts[0]  # the line begun in an earlier chunk; this one not copied
        rest = parts.pop()
        for part in parts:
            yield part.rstrip(b"\r")
    if rest:
        yield rest.rstrip(b"\r")
