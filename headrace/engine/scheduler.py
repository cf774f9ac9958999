"""Which sequences run in the next step, and how many tokens each computes.

Continuous batching under a per-step token budget:
1. running sequences that decode (one token each), most important first; when the cache
   has no block for one, the least important running sequence is preempted (its blocks
   freed, recomputed later), never failed;
2. running sequences still in prefill get the next chunk of their prompt (chunked prefill:
   a long prompt cannot stall the decodes beside it);
3. waiting sequences are admitted while budget, sequence slots and blocks last, by
   priority class, then round-robin across tenants inside a class, so a tenant with 100
   queued requests cannot starve a tenant with one.

Lower classes yield: while a sequence of a more important class runs, less important ones
(batch lines, `flex`) neither step nor start. They keep their blocks (a decode that needs
room still preempts them), so they resume where they paused. Sharing a step is not free
where compute is the limit (a CPU, a full GPU): each extra sequence lengthens every
interactive token, so background work takes only the steps interactive work leaves.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from headrace.engine.block_manager import BlockManager
from headrace.engine.sequence import Sequence, SequenceStatus


class WaitQueue:
    """Waiting sequences by priority class, round-robin across tenants within a class."""

    def __init__(self) -> None:
        self._classes: dict[int, OrderedDict[str, deque[Sequence]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, seq: Sequence, *, front: bool = False) -> None:
        tenants = self._classes.setdefault(seq.priority, OrderedDict())
        queue = tenants.setdefault(seq.tenant, deque())
        if front:  # a preempted sequence resumes before anything newer
            queue.appendleft(seq)
            tenants.move_to_end(seq.tenant, last=False)
        else:
            queue.append(seq)
        self._size += 1

    def peek(self) -> Sequence | None:
        for priority in sorted(self._classes):
            tenants = self._classes[priority]
            if tenants:
                return next(iter(tenants.values()))[0]
        return None

    def pop(self) -> Sequence:
        seq = self.peek()
        if seq is None:
            raise IndexError("pop from an empty WaitQueue")
        tenants = self._classes[seq.priority]
        queue = tenants[seq.tenant]
        queue.popleft()
        if queue:
            tenants.move_to_end(seq.tenant)  # the next pop serves another tenant
        else:
            del tenants[seq.tenant]
        self._size -= 1
        return seq

    def remove(self, seq: Sequence) -> bool:
        tenants = self._classes.get(seq.priority)
        queue = tenants.get(seq.tenant) if tenants else None
        if tenants is None or queue is None or seq not in queue:
            return False
        queue.remove(seq)
        if not queue:
            del tenants[seq.tenant]
        self._size -= 1
        return True


@dataclass(slots=True)
class SchedulerOutput:
    decodes: list[Sequence] = field(default_factory=list)
    prefills: list[tuple[Sequence, int]] = field(default_factory=list)  # (sequence, tokens)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.decodes and not self.prefills

    @property
    def num_tokens(self) -> int:
        return len(self.decodes) + sum(n for _, n in self.prefills)


class Scheduler:
    def __init__(
        self, block_manager: BlockManager, *, max_num_seqs: int, max_num_batched_tokens: int
    ) -> None:
        self.blocks = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting = WaitQueue()
        self.running: list[Sequence] = []  # sorted by (priority, arrival)
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        # At its longest a sequence must fit the whole cache alone, or it could never finish.
        if self.blocks.blocks_for(len(seq) + seq.params.max_tokens) > len(self.blocks.blocks):
            raise ValueError("the request can never fit in the KV cache")
        seq.status = SequenceStatus.WAITING
        self.waiting.push(seq)

    def has_work(self) -> bool:
        return bool(self.running) or len(self.waiting) > 0

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.max_num_batched_tokens
        # The most important class running; the classes below it yield this step.
        top = self.running[0].priority if self.running else None
        for seq in list(self.running):
            if seq.priority != top:
                break  # sorted by priority: the rest yield
            decoding = seq.status is SequenceStatus.RUNNING and seq.is_decoding and budget > 0
            if decoding and self._make_room(seq, out):
                self.blocks.append_slot(seq)
                out.decodes.append(seq)
                budget -= 1
        for seq in self.running:
            if seq.priority != top:
                break
            if not seq.is_decoding and budget > 0:
                n = min(seq.num_pending, budget)
                out.prefills.append((seq, n))
                budget -= n
        while budget > 0 and len(self.running) < self.max_num_seqs:
            head = self.waiting.peek()
            # Head-of-line: a large prompt waits for blocks rather than being overtaken
            # forever; a prefix being computed by another sequence is waited for.
            if head is None or not self.blocks.can_allocate(head):
                break
            if top is not None and head.priority > top:
                break  # a less important class waits while a more important one runs
            if not self.blocks.prefix_ready(head):
                break
            self.waiting.pop()
            self.blocks.allocate(head)
            if head.preemptions == 0:
                head.num_cached = head.num_computed
            head.status = SequenceStatus.RUNNING
            self._insert_running(head)
            n = min(head.num_pending, budget)
            out.prefills.append((head, n))
            budget -= n
        return out

    def finish(self, seq: Sequence) -> None:
        """Release a sequence that finished or was aborted, wherever it is."""
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
            self.blocks.deallocate(seq)
        elif seq.status is SequenceStatus.WAITING:
            self.waiting.remove(seq)
        seq.status = SequenceStatus.FINISHED

    def _make_room(self, seq: Sequence, out: SchedulerOutput) -> bool:
        """Preempt the least important running sequences until `seq` can append."""
        while not self.blocks.can_append(seq):
            victim = self.running[-1]
            self._preempt(victim, out)
            if victim is seq:
                return False
        return True

    def _preempt(self, seq: Sequence, out: SchedulerOutput) -> None:
        self.running.remove(seq)
        if seq in out.decodes:
            out.decodes.remove(seq)
        self.blocks.deallocate(seq)
        seq.status = SequenceStatus.WAITING
        seq.preemptions += 1
        self.num_preemptions += 1
        self.waiting.push(seq, front=True)
        out.preempted.append(seq)

    def _insert_running(self, seq: Sequence) -> None:
        key = seq.sort_key
        index = len(self.running)
        while index > 0 and self.running[index - 1].sort_key > key:
            index -= 1
        self.running.insert(index, seq)
