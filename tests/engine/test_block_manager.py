"""The block manager: allocation, sharing, prefix hits, eviction, no leaks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.engine.block_manager import BlockManager
from headrace.engine.interface import SamplingParams
from headrace.engine.sequence import Sequence

BS = 4
PARAMS = SamplingParams(max_tokens=8)


def seq(tokens: list[int], rid: str = "r") -> Sequence:
    return Sequence(rid, tokens, PARAMS)


def compute_all(bm: BlockManager, s: Sequence) -> None:
    s.num_computed = len(s)
    bm.mark_computed(s)


def test_allocate_and_free_return_every_block() -> None:
    bm = BlockManager(8, BS)
    s = seq(list(range(10)))
    assert bm.can_allocate(s)
    bm.allocate(s)
    assert len(s.block_table) == 3
    assert bm.num_free == 5
    bm.deallocate(s)
    assert bm.num_free == 8
    assert s.block_table == []


def test_shared_prefix_is_hit_once_computed() -> None:
    bm = BlockManager(16, BS)
    a = seq([1, 2, 3, 4, 5, 6, 7, 8, 9], "a")
    bm.allocate(a)
    b = seq([1, 2, 3, 4, 5, 6, 7, 8, 42], "b")
    assert not bm.prefix_ready(b)  # a's blocks are keyed but not computed yet
    compute_all(bm, a)
    assert bm.prefix_ready(b)
    bm.allocate(b)
    assert b.block_table[:2] == a.block_table[:2]
    assert b.block_table[2] != a.block_table[2]
    assert b.num_computed == 8
    assert bm.blocks[a.block_table[0]].ref_count == 2
    assert bm.hit_rate == 8 / 18


def test_last_token_is_always_computed() -> None:
    bm = BlockManager(16, BS)
    a = seq(list(range(8)), "a")
    bm.allocate(a)
    compute_all(bm, a)
    again = seq(list(range(8)), "b")
    bm.allocate(again)
    assert again.num_computed == 4  # not 8: the last block holds the token to sample from
    assert again.num_pending == 4


def test_freed_blocks_stay_cached_until_reused() -> None:
    bm = BlockManager(4, BS)
    a = seq(list(range(9)), "a")
    bm.allocate(a)
    compute_all(bm, a)
    bm.deallocate(a)
    b = seq(list(range(9)), "b")
    bm.allocate(b)
    assert b.num_computed == 8
    bm.deallocate(b)
    # Fill the pool with something else: the old prefix is evicted.
    c = seq([100 + i for i in range(16)], "c")
    bm.allocate(c)
    bm.deallocate(c)
    d = seq(list(range(9)), "d")
    bm.allocate(d)
    assert d.num_computed == 0


def test_uncomputed_blocks_are_never_hit_after_free() -> None:
    bm = BlockManager(8, BS)
    a = seq(list(range(9)), "a")
    bm.allocate(a)
    bm.deallocate(a)  # preempted before computing anything
    b = seq(list(range(9)), "b")
    assert bm.prefix_ready(b)
    bm.allocate(b)
    assert b.num_computed == 0


def test_append_takes_a_block_at_each_boundary() -> None:
    bm = BlockManager(8, BS)
    s = seq([1, 2, 3, 4])
    bm.allocate(s)
    compute_all(bm, s)
    s.token_ids.append(5)
    assert bm.can_append(s)
    bm.append_slot(s)
    assert len(s.block_table) == 2
    s.token_ids.append(6)
    bm.append_slot(s)
    assert len(s.block_table) == 2


def test_can_allocate_counts_shared_blocks() -> None:
    bm = BlockManager(3, BS)
    a = seq(list(range(9)), "a")
    bm.allocate(a)
    compute_all(bm, a)
    assert bm.num_free == 0
    b = seq(list(range(9)), "b")
    assert not bm.can_allocate(b)  # shares 2 blocks but still needs a third
    bm.deallocate(a)
    assert bm.can_allocate(b)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alloc", "compute", "append", "free"]),
            st.integers(0, 5),
            st.lists(st.integers(0, 3), min_size=1, max_size=14),
        ),
        max_size=60,
    )
)
def test_no_block_is_leaked_or_double_freed(ops: list[tuple[str, int, list[int]]]) -> None:
    bm = BlockManager(12, BS)
    live: dict[int, Sequence] = {}
    for op, slot, tokens in ops:
        s = live.get(slot)
        if op == "alloc" and s is None:
            new = seq(tokens, str(slot))
            if bm.can_allocate(new) and bm.prefix_ready(new):
                bm.allocate(new)
                live[slot] = new
        elif op == "compute" and s is not None:
            compute_all(bm, s)
        elif op == "append" and s is not None and s.num_pending == 0:
            s.token_ids.append(tokens[0])
            if bm.can_append(s):
                bm.append_slot(s)
            else:
                bm.deallocate(s)
                del live[slot]
        elif op == "free" and s is not None:
            bm.deallocate(s)
            del live[slot]
        # Invariants after every operation.
        refs = [0] * len(bm.blocks)
        for x in live.values():
            assert len(x.block_table) == bm.blocks_for(len(x))
            for b in x.block_table:
                refs[b] += 1
        assert [b.ref_count for b in bm.blocks] == refs
        in_use = sum(1 for r in refs if r)
        assert in_use + bm.num_free == len(bm.blocks)
    for x in list(live.values()):
        bm.deallocate(x)
    assert bm.num_free == len(bm.blocks)
