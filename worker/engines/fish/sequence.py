"""One chunk of a job's text being generated, and what it tells its job.

A sequence is created by the job's own thread, handed to the decode loop, and
from then on written only by the loop (its slot, progress, codes) and read by
the codec; the job learns what happens through events on its queue, in order:
`Generated` once its codes are final (the job may then start its next chunk),
`Audio` for each decoded window, `Done` after the last one, or `Failed`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from worker.engines.fish.handoff import Handoff
from worker.engines.fish.prompt import Sampling


@dataclass(frozen=True)
class Generated:
    sequence: Sequence
    frames: int


@dataclass(frozen=True)
class Audio:
    sequence: Sequence
    samples: Any  # float32 numpy array


@dataclass(frozen=True)
class Done:
    sequence: Sequence


@dataclass(frozen=True)
class Failed:
    sequence: Sequence
    error: BaseException


Event = Generated | Audio | Done | Failed


class Stopped(Exception):
    """The job stopped (canceled, timed out or lost its lease) while its chunk ran."""


@dataclass(eq=False)
class Sequence:
    prompt: torch.Tensor  # (1 + codebooks, length) int, on the CPU
    sampling: Sampling
    seed: int
    max_steps: int  # columns to generate at most (max_new_tokens, within the context)
    events: queue.SimpleQueue[Event]
    stop_requested: Callable[[], bool] = lambda: False
    index: int = 0  # which chunk of its job
    slot: int | None = None
    steps: int = 0  # decode steps run since it joined
    confirmed: int = 0  # frames known to come before its end of speech
    emitted: int = 0  # frames handed to the codec
    frames: int | None = None  # its final length, once known
    codes: Handoff | None = None  # (codebooks, >= frames) on the device, once it left
    _closed: threading.Event = field(default_factory=threading.Event)

    @property
    def prompt_length(self) -> int:
        return int(self.prompt.shape[1])

    @property
    def closed(self) -> bool:
        """Failed or stopped: nothing more is done for it."""
        return self._closed.is_set()

    def should_stop(self) -> bool:
        return self.closed or self.stop_requested()

    def fail(self, error: BaseException) -> None:
        if not self.closed:
            self._closed.set()
            self.events.put(Failed(self, error))

    def close(self) -> None:
        """The job gave up on it (stopped or failed elsewhere): drop any work left."""
        self._closed.set()
