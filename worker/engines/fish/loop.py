"""The decode loop: one thread that owns the GPU's batch, step after step.

Each turn it takes the sequences jobs submitted, drops those whose job stopped,
admits waiting ones into free slots (their prefill runs on a thread of its own
while the batch goes on decoding: admission.py), activates the newcomers whose
prefill is done, runs one decode step for every running sequence, and retires
those that reached their length. End of speech is flagged on the device and copied
back every `READBACK_STEPS` steps without a sync (a snapshot); once a snapshot
arrives, the frames it confirms go to the codec in windows, and a sequence
whose end it shows leaves the batch. At most `AHEAD` snapshots are in flight,
so the host never runs more than a few steps ahead of the device: a cancel, an
end of speech or a newcomer takes effect within a few steps.

The newcomers of a turn are prefilled together, in one forward. A failure
while admitting them (out of memory on a long prompt, say) is retried one by
one and fails that sequence alone; a failed decode step fails the sequences it ran.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from shoal.logs import get_logger
from worker import metrics
from worker.engines.fish.admission import Admission, Admitted
from worker.engines.fish.codec import Codec, Window, plan
from worker.engines.fish.handoff import Handoff, fence
from worker.engines.fish.runner import ModelRunner, Prefilled, Snapshot, release_memory
from worker.engines.fish.scheduler import Scheduler
from worker.engines.fish.sequence import Generated, Sequence, Stopped

log = get_logger(__name__)

READBACK_STEPS = 4
AHEAD = 2
PREFILL_BUDGET = 4096  # prompt tokens in one group of newcomers
PREFILLS_IN_FLIGHT = 2  # groups with the admission thread: one prefilling, the next queued
# The decode thread lets the GIL go at nearly every CUDA call and gets it back
# when the thread then holding it yields: after Python's switch interval, 5 ms
# by default. Next to a thread busy in Python one admission took 7.2 s on an
# H200, 0.7 s at this interval; the mix, where no thread spins, ran the same at
# either (docs/benchmarks.md). A guard, then, not a speed-up.
SWITCH_INTERVAL_S = 0.0005


@dataclass
class _Pending:
    snapshot: Snapshot
    members: dict[int, tuple[Sequence, int]]  # slot: (sequence, its steps then)


@dataclass
class LoopStats:
    steps: int = 0
    admissions: int = 0  # groups of newcomers prefilled
    joined: int = 0
    finished: int = 0
    failed: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # a sample, for benchmarks
    # Host seconds, for benchmarks: the admission thread prefilling newcomers;
    # the decode thread blocked on the device (it is the bottleneck then), and
    # with nothing at all to do.
    prefill_s: float = 0.0
    launch_s: float = 0.0  # in the step's launch (a graph's replay)
    device_wait_s: float = 0.0
    idle_s: float = 0.0


class DecodeLoop:
    def __init__(self, runner: ModelRunner, codec: Codec, slots: int) -> None:
        self.runner, self.codec = runner, codec
        self.scheduler: Scheduler[Sequence] = Scheduler(slots, PREFILL_BUDGET)
        self.stats = LoopStats()
        # New sequences from the jobs' threads, and groups back from the admission thread.
        self._inbox: queue.SimpleQueue[Sequence | Admitted] = queue.SimpleQueue()
        self._pending: deque[_Pending] = deque()
        self.admission = Admission(runner, self._inbox.put)
        self._prefilling = 0  # groups with the admission thread
        self._prefilled: deque[tuple[list[Sequence], Prefilled]] = deque()  # to activate
        self._thread = threading.Thread(target=self._serve, name="fish-decode", daemon=True)
        # High priority: the step's small kernels go first, between the codec's.
        self.stream: torch.cuda.Stream | None = None
        if runner.device.type == "cuda":
            self.stream = torch.cuda.Stream(device=runner.device, priority=-1)  # type: ignore[no-untyped-call]

    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.admission.start()
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.admission.alive

    def submit(self, sequence: Sequence) -> None:
        self._inbox.put(sequence)

    def _serve(self) -> None:
        if self.stream is not None:
            torch.cuda.set_stream(self.stream)
        while True:
            try:
                self._turn()
            except Exception as exc:  # a bug or a device fault: fail what it held, go on
                log.exception("decode loop failed; its sequences fail")
                self._fail_all(exc)

    def _fail_all(self, error: Exception) -> None:
        release_memory()
        for sequence in [*self.scheduler, *self.scheduler.waiting]:
            self._drop(sequence, error)
        self.scheduler.waiting.clear()
        for group, _ in self._prefilled:
            for sequence in group:
                self._drop(sequence, error)
        self._prefilled.clear()
        for sequence in self.scheduler.joining.values():  # still prefilling: their slots
            sequence.fail(error)  # stay theirs until it is back, then they drop as stopped
        for pending in self._pending:
            for sequence, _ in pending.members.values():
                sequence.fail(error)
        self._pending.clear()

    def _turn(self) -> None:
        self._receive()
        for sequence in self.scheduler.drop_stopped():
            sequence.fail(Stopped())
        for sequence in list(self.scheduler):
            if sequence.should_stop():
                self._drop(sequence, Stopped())
        self._activate()
        newcomers = self.scheduler.admit() if self._can_admit else []
        if newcomers:
            self._prefilling += 1
            # The fence: their prefill waits for the steps queued so far, those that
            # their slots' previous sequences ran among them.
            self.admission.submit(newcomers, fence(self.runner.device))
        running = list(self.scheduler)
        metrics.BATCH_SEQUENCES.set(len(running))
        if running:
            self._step(running)
        self._resolve(wait=not running)

    @property
    def _can_admit(self) -> bool:
        waiting = bool(self.scheduler.waiting) and not self.scheduler.full
        return waiting and self._prefilling < PREFILLS_IN_FLIGHT

    def _receive(self) -> None:
        """New sequences and prefilled groups; blocks while there is nothing to do but wait."""
        busy = self.scheduler.running or self._pending or self._prefilled or self._can_admit
        block = not busy
        idle = block and self.scheduler.idle
        started = time.perf_counter()
        try:
            self._take(self._inbox.get(block=block))
            if idle:
                self.stats.idle_s += time.perf_counter() - started
            while True:
                self._take(self._inbox.get_nowait())
        except queue.Empty:
            pass

    def _take(self, item: Sequence | Admitted) -> None:
        if isinstance(item, Sequence):
            self.scheduler.add(item)
            return
        self._prefilling -= 1
        self.stats.admissions += 1
        self.stats.prefill_s += item.seconds
        for sequence, error in item.failed:
            self._drop(sequence, error)
        self._prefilled.extend(item.prefilled)

    def _activate(self) -> None:
        """Newcomers whose prefill the device has done join the batch (with nothing
        running, the rest too: the next step waits for their prefill on the device)."""
        while self._prefilled and (self._prefilled[0][1].ready() or not self.scheduler.running):
            group, prefilled = self._prefilled[0]
            self.runner.activate(prefilled)
            self._prefilled.popleft()  # only now: should that fail, _fail_all frees them
            for sequence in group:
                self.scheduler.activate(sequence)
            self.stats.joined += len(group)

    def _step(self, running: list[Sequence]) -> None:
        while len(self._pending) >= AHEAD:
            started = time.perf_counter()
            self._pending[0].snapshot.ended.wait()
            self.stats.device_wait_s += time.perf_counter() - started
            self._resolve(wait=False)
        longest = max(s.prompt_length + s.steps for s in running)
        rows = self.scheduler.rows
        started = time.perf_counter()
        try:
            self.runner.step(rows, longest)
            self.stats.launch_s += time.perf_counter() - started
        except Exception as exc:
            log.exception("decode step failed", rows=rows)
            for sequence in running:
                self._drop(sequence, exc)
            return
        self.stats.steps += 1
        if self.stats.steps % 64 == 0:
            self.stats.batch_sizes.append(len(running))
        members = {}
        done = []
        for sequence in running:
            sequence.steps += 1
            assert sequence.slot is not None
            members[sequence.slot] = (sequence, sequence.steps)
            if sequence.steps >= sequence.max_steps:
                done.append(sequence)
        for sequence in done:  # its length reached: out now, its end read back later
            self._leave(sequence, sequence.steps)
        if done or self.stats.steps % READBACK_STEPS == 0:
            self._pending.append(_Pending(self.runner.snapshot(rows), members))

    def _resolve(self, wait: bool) -> None:
        """Act on every snapshot the device has delivered (or the oldest, if `wait`)."""
        while self._pending and (wait or self._pending[0].snapshot.ended.ready()):
            pending = self._pending.popleft()
            ended = pending.snapshot.ended.wait().tolist()
            end_at = pending.snapshot.end_at.tolist()
            for slot, (sequence, steps) in pending.members.items():
                if sequence.closed or sequence.frames is not None:
                    continue
                if ended[slot]:
                    self._finish(sequence, end_at[slot])
                elif sequence.codes is not None and steps == sequence.steps:
                    self._finish(sequence, steps)  # it reached its length
                else:
                    sequence.confirmed = max(sequence.confirmed, steps)
                    self._emit(sequence, final=False)
            wait = False

    def _leave(self, sequence: Sequence, frames: int) -> None:
        """Out of the batch; its codes copied first, since its slot is reused."""
        assert sequence.slot is not None
        self.runner.leave(sequence.slot)
        self.scheduler.retire(sequence)
        sequence.codes = self.runner.codes(sequence.slot, 0, frames)

    def _finish(self, sequence: Sequence, frames: int) -> None:
        if sequence.codes is None:
            self._leave(sequence, frames)
        sequence.frames = sequence.confirmed = frames
        self.stats.finished += 1
        sequence.events.put(Generated(sequence, frames))
        self._emit(sequence, final=True)

    def _emit(self, sequence: Sequence, final: bool) -> None:
        """Hand the confirmed frames not yet decoded to the codec, in windows."""
        codec = self.codec
        spans = plan(sequence.emitted, sequence.confirmed, codec.window, codec.overlap, final)
        for begin, start, end in spans:
            codec.put(
                Window(
                    sequence,
                    self._codes(sequence, begin, end),
                    context=start - begin,
                    frames=end - start,
                    last=final and end == sequence.confirmed,
                )
            )
            sequence.emitted = end
        if final and not spans:
            codec.put(Window(sequence, None, 0, 0, last=True))

    def _codes(self, sequence: Sequence, begin: int, end: int) -> Handoff:
        if sequence.codes is not None:  # it left: its own copy
            return sequence.codes[:, begin:end]
        assert sequence.slot is not None
        return self.runner.codes(sequence.slot, begin, end)

    def _drop(self, sequence: Sequence, error: BaseException) -> None:
        if sequence.slot is not None and self.scheduler.holds(sequence):
            self.runner.leave(sequence.slot)
            self.scheduler.retire(sequence)
        self.stats.failed += 1
        sequence.fail(error)
