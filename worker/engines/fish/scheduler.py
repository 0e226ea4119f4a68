"""Which sequences hold the batch's slots: admission and retirement, no tensors.

Slots are the rows of the runner's KV cache. A waiting sequence takes the
lowest free slot at a step boundary, so the batch stays packed at the bottom
and the runner's step covers as few rows as possible; a sequence leaves when it
ends or stops, without waiting for the others. Admission is first come, first
served, with a budget of prompt tokens per group: a group's newcomers are
prefilled together (one padded forward) while the running sequences go on
decoding, and join them (`activate`) once their prefill is done; a burst of
long prompts is spread over several groups.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Schedulable(Protocol):
    slot: int | None

    @property
    def prompt_length(self) -> int: ...

    def should_stop(self) -> bool: ...


S = TypeVar("S", bound=Schedulable)


class Scheduler(Generic[S]):
    def __init__(self, slots: int, prefill_budget: int) -> None:
        if slots < 1:
            raise ValueError("a batch needs at least one slot")
        self.slots = slots
        self.prefill_budget = prefill_budget
        self.waiting: deque[S] = deque()
        self.joining: dict[int, S] = {}  # admitted, prefilling: their slots are taken
        self.running: dict[int, S] = {}
        self._free = list(range(slots))  # a heap: the lowest free slot first

    def add(self, sequence: S) -> None:
        self.waiting.append(sequence)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.joining and not self.running

    @property
    def full(self) -> bool:
        return not self._free

    @property
    def rows(self) -> int:
        """Rows a decode step must cover: up to the highest slot in use."""
        return max(self.running) + 1 if self.running else 0

    def __iter__(self) -> Iterator[S]:
        """The running sequences, by slot."""
        return iter([self.running[slot] for slot in sorted(self.running)])

    def drop_stopped(self) -> list[S]:
        """Waiting sequences whose job stopped: they leave without ever running."""
        stopped = [s for s in self.waiting if s.should_stop()]
        for sequence in stopped:
            self.waiting.remove(sequence)
        return stopped

    def admit(self) -> list[S]:
        """Give free slots to waiting sequences, in order, within the prefill budget.

        The newcomers are prefilled together, right-padded to the longest, so
        the budget counts newcomers times the longest prompt. The first one
        always fits, however long its prompt, so no prompt waits forever.
        """
        admitted: list[S] = []
        longest = 0
        while self.waiting and self._free:
            length = max(longest, self.waiting[0].prompt_length)
            if admitted and (len(admitted) + 1) * length > self.prefill_budget:
                break
            sequence = self.waiting.popleft()
            sequence.slot = heapq.heappop(self._free)
            self.joining[sequence.slot] = sequence
            admitted.append(sequence)
            longest = length
        return admitted

    def activate(self, sequence: S) -> None:
        """A joining sequence's prefill is done: it runs from the next step."""
        assert sequence.slot is not None and self.joining.get(sequence.slot) is sequence
        self.running[sequence.slot] = self.joining.pop(sequence.slot)

    def holds(self, sequence: S) -> bool:
        """Whether the sequence holds a slot (running or joining)."""
        holders = (self.running, self.joining)
        return any(h.get(sequence.slot) is sequence for h in holders if sequence.slot is not None)

    def retire(self, sequence: S) -> None:
        """Free the sequence's slot (it ended, stopped or failed)."""
        slot = sequence.slot
        for holders in (self.running, self.joining):
            if slot is not None and holders.get(slot) is sequence:
                del holders[slot]
                heapq.heappush(self._free, slot)
