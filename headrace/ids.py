"""Random hex ids without a system call for each.

`secrets.token_hex` reads the kernel's generator once per id; on the request path that
was a few per cent of a proxied request's CPU (docs/benchmarks.md). Here the same
randomness (`os.urandom`) is read 4 KiB at a time and handed out in slices, each byte once.
"""

from __future__ import annotations

import os
import threading


class _RandomPool:
    def __init__(self, refill_bytes: int = 4096) -> None:
        self._refill = refill_bytes
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def take(self, nbytes: int) -> bytes:
        with self._lock:
            if self._at + nbytes > len(self._pool):
                self._pool, self._at = os.urandom(max(self._refill, nbytes)), 0
            chunk = self._pool[self._at : self._at + nbytes]
            self._at += nbytes
        return chunk


_POOL = _RandomPool()


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as hex, as `secrets.token_hex(nbytes)`."""
    return _POOL.take(nbytes).hex()
