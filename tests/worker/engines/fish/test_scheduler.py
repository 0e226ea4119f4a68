"""The scheduler alone, with fake sequences: slots, admission order, budget, joining, retirement."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from worker.engines.fish.scheduler import Scheduler


@dataclass(eq=False)
class Fake:
    prompt_length: int = 10
    stop: bool = False
    slot: int | None = None

    def should_stop(self) -> bool:
        return self.stop


def admit_and_run(scheduler: Scheduler[Fake]) -> list[Fake]:
    """Admit, and let every newcomer's prefill be done at once."""
    admitted = scheduler.admit()
    for sequence in admitted:
        scheduler.activate(sequence)
    return admitted


def test_sequences_take_the_lowest_free_slots_in_arrival_order() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=3, prefill_budget=1000)
    first, second, third, fourth = Fake(), Fake(), Fake(), Fake()
    for sequence in (first, second, third, fourth):
        scheduler.add(sequence)
    assert admit_and_run(scheduler) == [first, second, third]
    assert [s.slot for s in (first, second, third)] == [0, 1, 2]
    assert list(scheduler.waiting) == [fourth]  # no slot left: it waits
    assert scheduler.rows == 3


def test_a_sequence_leaves_without_waiting_and_a_newcomer_takes_its_slot() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=3, prefill_budget=1000)
    running = [Fake(), Fake(), Fake()]
    for sequence in running:
        scheduler.add(sequence)
    admit_and_run(scheduler)
    scheduler.retire(running[1])  # the middle one ends first
    assert list(scheduler) == [running[0], running[2]]
    assert scheduler.rows == 3  # the step still covers slot 2
    newcomer = Fake()
    scheduler.add(newcomer)
    assert admit_and_run(scheduler) == [newcomer]
    assert newcomer.slot == 1  # the hole is filled: the batch stays packed
    scheduler.retire(running[2])
    scheduler.retire(newcomer)
    assert scheduler.rows == 1  # only slot 0 left: the step shrinks to one row


def test_retiring_twice_or_a_stranger_changes_nothing() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=2, prefill_budget=1000)
    sequence = Fake()
    scheduler.add(sequence)
    scheduler.admit()
    scheduler.retire(sequence)
    scheduler.retire(sequence)
    scheduler.retire(Fake(slot=1))
    scheduler.add(a := Fake())
    scheduler.add(b := Fake())
    assert scheduler.admit() == [a, b]  # both slots free, once each
    assert {a.slot, b.slot} == {0, 1}


def test_the_prefill_budget_spreads_a_burst_over_several_steps() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=8, prefill_budget=100)
    burst = [Fake(prompt_length=40) for _ in range(5)]
    for sequence in burst:
        scheduler.add(sequence)
    assert scheduler.admit() == burst[:2]  # 80 of 100 tokens; a third would pass it
    assert scheduler.admit() == burst[2:4]
    assert scheduler.admit() == burst[4:]


def test_a_prompt_longer_than_the_budget_still_gets_in_alone() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=4, prefill_budget=100)
    long, short = Fake(prompt_length=500), Fake(prompt_length=10)
    scheduler.add(long)
    scheduler.add(short)
    assert scheduler.admit() == [long]
    assert scheduler.admit() == [short]


def test_stopped_waiting_sequences_are_dropped_before_they_run() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=1, prefill_budget=1000)
    running, canceled, next_one = Fake(), Fake(), Fake()
    for sequence in (running, canceled, next_one):
        scheduler.add(sequence)
    admit_and_run(scheduler)
    canceled.stop = True
    assert scheduler.drop_stopped() == [canceled]
    scheduler.retire(running)
    assert scheduler.admit() == [next_one]
    assert scheduler.idle is False
    scheduler.retire(next_one)
    assert scheduler.idle


def test_a_batch_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        Scheduler(slots=0, prefill_budget=10)


def test_the_budget_counts_every_newcomer_padded_to_the_longest() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=8, prefill_budget=100)
    burst = [Fake(prompt_length=10), Fake(prompt_length=45), Fake(prompt_length=10)]
    for sequence in burst:
        scheduler.add(sequence)
    assert scheduler.admit() == burst[:2]  # 2 x 45 = 90; a third makes 135
    assert scheduler.admit() == burst[2:]


def test_a_joining_sequence_holds_its_slot_but_is_not_stepped_until_activated() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=2, prefill_budget=1000)
    running, joining, waiting = Fake(), Fake(), Fake()
    scheduler.add(running)
    admit_and_run(scheduler)
    scheduler.add(joining)
    scheduler.add(waiting)
    assert scheduler.admit() == [joining]  # prefilling now
    assert list(scheduler) == [running] and scheduler.rows == 1  # the step leaves it out
    assert scheduler.full and scheduler.admit() == []  # its slot is taken meanwhile
    scheduler.retire(running)
    assert not scheduler.idle  # it still holds a slot
    scheduler.activate(joining)
    assert list(scheduler) == [joining] and scheduler.rows == 2
    scheduler.retire(joining)
    assert admit_and_run(scheduler) == [waiting] and waiting.slot == 0


def test_a_sequence_retired_while_joining_frees_its_slot() -> None:
    scheduler: Scheduler[Fake] = Scheduler(slots=1, prefill_budget=1000)
    first, second = Fake(), Fake()
    scheduler.add(first)
    scheduler.add(second)
    scheduler.admit()
    scheduler.retire(first)  # its prefill failed, say
    assert scheduler.admit() == [second] and second.slot == 0
