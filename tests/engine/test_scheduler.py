"""The scheduler, driven by a fake model: budgets, chunking, priorities, fairness,
preemption, and that every admitted request finishes with no block leaked."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.engine.block_manager import BlockManager
from headrace.engine.interface import SamplingParams
from headrace.engine.scheduler import Scheduler, SchedulerOutput, WaitQueue
from headrace.engine.sequence import Sequence, SequenceStatus

BS = 4


def make(
    rid: str, prompt_len: int, max_tokens: int = 4, *, priority: int = 0, tenant: str = ""
) -> Sequence:
    prompt = [hash((rid, i)) % 50 for i in range(prompt_len)]
    return Sequence(
        rid, prompt, SamplingParams(max_tokens=max_tokens), priority=priority, tenant=tenant
    )


def fake_step(sched: Scheduler, out: SchedulerOutput) -> list[Sequence]:
    """What the engine does after a forward: advance, sample one token, finish at max."""
    finished = []
    for seq, n in [(s, 1) for s in out.decodes] + out.prefills:
        seq.num_computed += n
        sched.blocks.mark_computed(seq)
        if seq.num_computed == len(seq):
            seq.token_ids.append(7)
            if seq.num_output_tokens >= seq.params.max_tokens:
                sched.finish(seq)
                finished.append(seq)
    return finished


def run_to_completion(sched: Scheduler, limit: int = 10_000) -> list[Sequence]:
    done: list[Sequence] = []
    for _ in range(limit):
        if not sched.has_work():
            return done
        done += fake_step(sched, sched.schedule())
    raise AssertionError("scheduler did not drain")


def test_new_requests_join_a_running_batch() -> None:
    sched = Scheduler(BlockManager(64, BS), max_num_seqs=8, max_num_batched_tokens=64)
    a = make("a", 5, max_tokens=10)
    sched.add(a)
    fake_step(sched, sched.schedule())
    b = make("b", 5)
    sched.add(b)
    out = sched.schedule()
    assert out.decodes == [a]
    assert [s for s, _ in out.prefills] == [b]


def test_chunked_prefill_respects_the_budget_and_decodes_go_first() -> None:
    sched = Scheduler(BlockManager(256, BS), max_num_seqs=8, max_num_batched_tokens=16)
    short = make("short", 3, max_tokens=20)
    sched.add(short)
    fake_step(sched, sched.schedule())
    long = make("long", 100)
    sched.add(long)
    chunks = []
    while long.num_output_tokens == 0:
        out = sched.schedule()
        assert out.num_tokens <= 16
        assert short in out.decodes  # the running decode is never stalled by the prompt
        chunks.extend(n for s, n in out.prefills if s is long)
        fake_step(sched, out)
    assert sum(chunks) == 100
    assert max(chunks) == 15


def test_interactive_before_batch() -> None:
    sched = Scheduler(BlockManager(64, BS), max_num_seqs=1, max_num_batched_tokens=64)
    sched.add(make("batch", 4, priority=1))
    sched.add(make("chat", 4, priority=0))
    out = sched.schedule()
    assert [s.request_id for s, _ in out.prefills] == ["chat"]


def test_batch_yields_while_interactive_runs_and_resumes_after() -> None:
    sched = Scheduler(BlockManager(64, BS), max_num_seqs=8, max_num_batched_tokens=64)
    batch = make("batch", 4, max_tokens=6, priority=1)
    sched.add(batch)
    fake_step(sched, sched.schedule())  # the batch line runs alone: nothing else to do
    chat = make("chat", 4, max_tokens=3, priority=0)
    sched.add(chat)
    fake_step(sched, sched.schedule())  # the chat is admitted beside it
    later = make("batch2", 4, priority=1)
    sched.add(later)
    while chat.status is not SequenceStatus.FINISHED:
        out = sched.schedule()
        assert batch not in out.decodes  # paused, keeping its blocks
        assert later not in [s for s, _ in out.prefills]  # and no new batch line starts
        fake_step(sched, out)
    assert batch.status is SequenceStatus.RUNNING
    assert batch.block_table
    out = sched.schedule()
    assert batch in out.decodes
    assert [s for s, _ in out.prefills] == [later]


def test_round_robin_across_tenants() -> None:
    q = WaitQueue()
    for i in range(100):
        q.push(make(f"big{i}", 2, tenant="big"))
    q.push(make("small0", 2, tenant="small"))
    first_two = [q.pop().tenant, q.pop().tenant]
    assert sorted(first_two) == ["big", "small"]
    assert len(q) == 99


def test_preempted_sequence_resumes_first_and_everything_finishes() -> None:
    # 6 blocks of 4 tokens: two sequences that grow to 16 tokens cannot both fit.
    sched = Scheduler(BlockManager(6, BS), max_num_seqs=4, max_num_batched_tokens=64)
    seqs = [make(f"s{i}", 6, max_tokens=10) for i in range(3)]
    for s in seqs:
        sched.add(s)
    done = run_to_completion(sched)
    assert {s.request_id for s in done} == {"s0", "s1", "s2"}
    assert sched.num_preemptions > 0
    assert all(s.num_output_tokens == 10 for s in seqs)
    assert sched.blocks.num_free == 6


def test_a_sequence_that_can_never_fit_is_refused() -> None:
    sched = Scheduler(BlockManager(4, BS), max_num_seqs=4, max_num_batched_tokens=64)
    try:
        sched.add(make("huge", 20))
    except ValueError:
        return
    raise AssertionError("expected ValueError")


def test_n_copies_share_the_prompt_blocks() -> None:
    sched = Scheduler(BlockManager(64, BS), max_num_seqs=8, max_num_batched_tokens=64)
    copies = [Sequence(f"c{i}", list(range(17)), SamplingParams(max_tokens=2)) for i in range(3)]
    for c in copies:
        sched.add(c)
    first = sched.schedule()
    assert [s.request_id for s, _ in first.prefills] == ["c0"]  # the others wait for its blocks
    fake_step(sched, first)
    second = sched.schedule()
    assert {s.request_id: n for s, n in second.prefills} == {"c1": 1, "c2": 1}
    assert copies[1].block_table[:4] == copies[0].block_table[:4]
    assert copies[1].num_cached == 16


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "step", "step", "abort"]),
            st.integers(1, 30),  # prompt length
            st.integers(1, 12),  # max tokens
            st.integers(0, 1),  # priority
            st.sampled_from(["t1", "t2", "t3"]),
        ),
        max_size=80,
    ),
    st.integers(8, 40),  # blocks
    st.integers(4, 64),  # token budget
)
def test_every_admitted_request_finishes_and_no_block_leaks(
    ops: list[tuple[str, int, int, int, str]], num_blocks: int, budget: int
) -> None:
    sched = Scheduler(BlockManager(num_blocks, BS), max_num_seqs=6, max_num_batched_tokens=budget)
    admitted: list[Sequence] = []
    aborted: set[str] = set()
    for i, (op, plen, max_tokens, prio, tenant) in enumerate(ops):
        if op == "add":
            s = make(f"r{i}", plen, max_tokens, priority=prio, tenant=tenant)
            try:
                sched.add(s)
            except ValueError:
                continue
            admitted.append(s)
        elif op == "step" and sched.has_work():
            out = sched.schedule()
            assert out.num_tokens <= budget
            assert len(sched.running) <= 6
            fake_step(sched, out)
        elif op == "abort" and admitted:
            victim = admitted[(i * 7) % len(admitted)]
            if victim.status is not SequenceStatus.FINISHED:
                sched.finish(victim)
                aborted.add(victim.request_id)
    run_to_completion(sched)
    for s in admitted:
        assert s.status is SequenceStatus.FINISHED
        if s.request_id not in aborted:
            assert s.num_output_tokens == s.params.max_tokens
    assert sched.blocks.num_free == num_blocks
    assert all(b.ref_count == 0 for b in sched.blocks.blocks)
