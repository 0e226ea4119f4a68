"""Newcomers' prefill on a thread and a CUDA stream of its own, while the batch decodes.

A prefill is some 1,400 calls into PyTorch, and each lets Python's GIL go;
next to the codec's and the jobs' threads one admission held the decode
thread for about 200 ms in the mix on an H200, and every running stream
stalled meanwhile (docs/benchmarks.md). So the decode loop hands each group of
newcomers, their slots already taken, to this thread and goes on stepping.
The prefill writes only those slots' caches, where a step writes nothing it
would read (a free slot's position is parked past every prompt: runner.py),
and it starts after a fence on the decode stream, so after every step that
the slots' previous sequences ran. The loop activates a group once its
prefill is done on the device.

A group that fails (out of memory on a long prompt, say) is prefilled again
one sequence at a time: only a sequence that fails alone fails.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from shoal.logs import get_logger
from worker.engines.fish.runner import ModelRunner, Newcomer, Prefilled, release_memory
from worker.engines.fish.sequence import Sequence

log = get_logger(__name__)


@dataclass
class Admitted:
    """What became of a group of newcomers: its prefills, and the sequences that failed."""

    prefilled: list[tuple[list[Sequence], Prefilled]] = field(default_factory=list)
    failed: list[tuple[Sequence, Exception]] = field(default_factory=list)
    seconds: float = 0.0  # host time the prefills took


class Admission:
    def __init__(self, runner: ModelRunner, deliver: Callable[[Admitted], None]) -> None:
        self.runner = runner
        self._deliver = deliver  # called on this thread, once per group
        self._todo: queue.SimpleQueue[tuple[list[Sequence], torch.cuda.Event | None]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name="fish-prefill", daemon=True)
        # The default priority: the decode stream's small kernels go first.
        self.stream: torch.cuda.Stream | None = None
        if runner.device.type == "cuda":
            self.stream = torch.cuda.Stream(device=runner.device)  # type: ignore[no-untyped-call]

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, group: list[Sequence], after: torch.cuda.Event | None) -> None:
        """Prefill the group's slots once the device has done the work before `after`."""
        self._todo.put((group, after))

    def _serve(self) -> None:
        if self.stream is not None:
            torch.cuda.set_stream(self.stream)
        while True:
            group, after = self._todo.get()
            admitted = Admitted()
            started = time.perf_counter()
            try:
                if after is not None:
                    torch.cuda.current_stream(self.runner.device).wait_event(after)
                self._prefill(group, admitted)
            except Exception as exc:  # a bug: whatever did not get in fails
                log.exception("prefill failed; its sequences fail")
                settled = {id(s) for part, _ in admitted.prefilled for s in part}
                settled |= {id(s) for s, _ in admitted.failed}
                admitted.failed += [(s, exc) for s in group if id(s) not in settled]
            admitted.seconds = time.perf_counter() - started
            self._deliver(admitted)

    def _prefill(self, group: list[Sequence], admitted: Admitted) -> None:
        try:
            prefilled = self.runner.prefill_many([_newcomer(s) for s in group])
        except Exception as exc:  # out of memory on a long prompt, say
            release_memory()
            if len(group) == 1:
                log.warning("sequence failed to join the batch", error=str(exc))
                admitted.failed.append((group[0], exc))
            else:
                for sequence in group:
                    self._prefill([sequence], admitted)
            return
        admitted.prefilled.append((group, prefilled))


def _newcomer(sequence: Sequence) -> Newcomer:
    assert sequence.slot is not None
    return Newcomer(sequence.slot, sequence.prompt, sequence.sampling, sequence.seed)
