"""The paged KV cache's bookkeeping: which blocks are free, who shares which, what is cached.

Blocks are reference-counted. A full block is keyed by a hash of every token id up to its
end, so two sequences with the same prefix (a system prompt, a conversation's history)
share its blocks instead of computing them again. A freed block keeps its key while it
sits in the free list, oldest first: it can still be hit until it is reused (LRU eviction).
"""

from __future__ import annotations

from collections import OrderedDict

from headrace.engine.sequence import Sequence


class Block:
    __slots__ = ("computed", "hash", "id", "ref_count", "tokens")

    def __init__(self, block_id: int) -> None:
        self.id = block_id
        self.ref_count = 0
        self.hash: int | None = None  # set once the block is full
        self.tokens: tuple[int, ...] = ()
        self.computed = False  # its keys and values are in the cache


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._cached: dict[int, int] = {}  # prefix hash -> block id
        self.queried_tokens = 0
        self.hit_tokens = 0

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def usage(self) -> float:
        return 1.0 - len(self._free) / len(self.blocks)

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # --- admission ------------------------------------------------------------------------

    def can_allocate(self, seq: Sequence) -> bool:
        """Enough free blocks for all of `seq`'s tokens, counting shared prefix blocks."""
        hits = self._hits(seq)
        in_use = sum(1 for b in hits if self.blocks[b].ref_count > 0)
        return self.blocks_for(len(seq)) - in_use <= len(self._free)

    def prefix_ready(self, seq: Sequence) -> bool:
        """False while a shared prefix block is still being computed by another sequence."""
        return all(self.blocks[b].computed for b in self._hits(seq))

    def allocate(self, seq: Sequence) -> None:
        """Give `seq` blocks for all its tokens, reusing cached prefix blocks."""
        hits = self._hits(seq)
        for block_id in hits:
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self._free[block_id]
            block.ref_count += 1
            seq.block_table.append(block_id)
        # Full blocks are keyed at once, so sequences admitted while this one computes
        # them (the `n` choices of one request, a burst sharing a system prompt) wait for
        # them instead of computing them again; see `prefix_ready`.
        full = len(seq) // self.block_size
        hashes = self._hashes(seq, full)
        for i in range(len(hits), self.blocks_for(len(seq))):
            block = self._take_free()
            if i < full:
                self._key(block, hashes[i], seq, i)
            seq.block_table.append(block.id)
        seq.num_computed = len(hits) * self.block_size
        seq.num_marked_blocks = len(hits)
        self.queried_tokens += len(seq)
        self.hit_tokens += seq.num_computed

    def deallocate(self, seq: Sequence) -> None:
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                if not block.computed:
                    self._forget(block)  # half-written: must never be hit
                self._free[block_id] = None
        seq.block_table.clear()
        seq.num_computed = 0
        seq.num_marked_blocks = 0

    # --- decoding -------------------------------------------------------------------------

    def can_append(self, seq: Sequence) -> bool:
        return self.blocks_for(len(seq)) <= len(seq.block_table) or bool(self._free)

    def append_slot(self, seq: Sequence) -> None:
        """Make room for the last token of `seq` (a new block at each block boundary)."""
        if self.blocks_for(len(seq)) > len(seq.block_table):
            seq.block_table.append(self._take_free().id)

    def mark_computed(self, seq: Sequence) -> None:
        """After a step: blocks now full of computed tokens become shareable."""
        full = seq.num_computed // self.block_size
        if full <= seq.num_marked_blocks:
            return
        hashes = self._hashes(seq, full)
        for i in range(seq.num_marked_blocks, full):
            block = self.blocks[seq.block_table[i]]
            if block.hash is None:  # filled by decoding rather than known at admission
                self._key(block, hashes[i], seq, i)
            block.computed = True
        seq.num_marked_blocks = full

    # --- internals ------------------------------------------------------------------------

    def _hits(self, seq: Sequence) -> list[int]:
        """Leading blocks of `seq` already cached. The last token is always left to compute,
        since its logits are needed to sample."""
        full = (len(seq) - 1) // self.block_size
        hashes = self._hashes(seq, full)
        hits = []
        for i, h in enumerate(hashes):
            block_id = self._cached.get(h)
            start = i * self.block_size
            if block_id is None or self.blocks[block_id].tokens != tuple(
                seq.token_ids[start : start + self.block_size]
            ):
                break
            hits.append(block_id)
        return hits

    def _hashes(self, seq: Sequence, count: int) -> list[int]:
        """Chained hashes of the first `count` full blocks, memoised on the sequence."""
        bs, hashes = self.block_size, seq.block_hashes
        while len(hashes) < count:
            i = len(hashes)
            prev = hashes[-1] if hashes else 0
            hashes.append(hash((prev, *seq.token_ids[i * bs : (i + 1) * bs])))
        return hashes[:count]

    def _key(self, block: Block, block_hash: int, seq: Sequence, index: int) -> None:
        block.hash = block_hash
        start = index * self.block_size
        block.tokens = tuple(seq.token_ids[start : start + self.block_size])
        self._cached.setdefault(block_hash, block.id)

    def _take_free(self) -> Block:
        block_id, _ = self._free.popitem(last=False)  # least recently freed first
        block = self.blocks[block_id]
        self._forget(block)
        block.ref_count = 1
        block.computed = False
        return block

    def _forget(self, block: Block) -> None:
        if block.hash is not None and self._cached.get(block.hash) == block.id:
            del self._cached[block.hash]
        block.hash = None
        block.tokens = ()
