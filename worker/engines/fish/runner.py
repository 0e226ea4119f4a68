"""The model runner: the batch's KV cache, its slot state and the captured steps.

It owns one static KV cache of `slots` rows of `context` positions each, sized
once from the model's config, and the per-slot state of step.py. Newcomers join
in two parts: `prefill_many` fills their slots' caches with their prompts, all
in one eager forward, on whichever thread and stream call it; `activate` then
writes their slot state (last column, position, knobs, seed) on the decode
stream, between two steps. `join_many` does both at once; `leave` frees a slot;
`step` runs one token for the lowest `rows` slots, reading at most `longest`
positions of attention.

A step computes every row up to `rows`, free slots too, and writes their keys
and values at their positions: a free slot's position is parked at the last
one of the context, which no prompt reaches, so a prefill into a free slot may
run on another stream while steps go on (admission.py).

On CUDA the step is captured as a CUDA graph for each pair of bucketed sizes
(rows: 1 or 2, 8, 16, 32, then multiples of 16; attention length: powers of
two from 512 up to the context: 24 graphs for 64 slots and 4,096 positions,
where each graph's warm-up run and capture cost start-up time), all sharing
one memory pool, so a step costs one graph launch and no allocation. At batch
1 the step is bound by kernel launches, not rows or attention length, so
coarser buckets cost little. Compiled (SHOAL_FISH_COMPILE), the step's repeated units go
through Inductor first (compiled.py: five small graphs, not the whole unrolled
step, which took minutes); otherwise the graphs hold its eager kernels (step.py
keeps them few). Results come back to the host only through `snapshot`
(end-of-speech flags, copied without a sync) and `codes` (a slot's codes).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch

from shoal.logs import get_logger
from worker.engines.fish.handoff import Handoff, fence
from worker.engines.fish.model import FishModel
from worker.engines.fish.prompt import Sampling
from worker.engines.fish.sampling import WINDOW, knobs
from worker.engines.fish.step import (
    EAGER,
    Attention,
    Caches,
    Model,
    Passes,
    Slots,
    decode_step,
    prefill,
)

log = get_logger(__name__)

SHORTEST_ATTENTION = 512


def row_buckets(slots: int, smallest: int = 1) -> list[int]:
    sizes = [size for size in (1, 2) if smallest <= size < slots]
    sizes += [size for size in (8, 16, 32, *range(48, 1 << 16, 16)) if size < slots]
    return [*sizes, max(slots, smallest)]


def length_buckets(context: int) -> list[int]:
    doubling = (SHORTEST_ATTENTION << n for n in range(32))
    sizes = list(itertools.takewhile(lambda s: s < context, doubling))
    return [*sizes, context]


def bucket(value: int, sizes: list[int]) -> int:
    return next(size for size in sizes if size >= value)


def release_memory() -> None:
    """Give cached device memory back after a failure (out of memory, say)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class Newcomer:
    """A sequence about to take a slot: its prompt (rows, length), knobs and seed."""

    slot: int
    prompt: torch.Tensor
    sampling: Sampling
    seed: int


@dataclass
class Prefilled:
    """Newcomers whose prompts are in their slots' caches; `activate` sets their state."""

    state: Handoff  # (newcomers, rows + 3): last column, slot, position, seed
    knobs: Handoff  # (newcomers, 4) float32

    def ready(self) -> bool:
        """Whether the device has finished the prefill (always, on the CPU)."""
        return self.state.ready()


@dataclass
class Snapshot:
    """End-of-speech flags of rows 0..n-1 after some step, on the host."""

    ended: Handoff
    end_at: torch.Tensor


class ModelRunner:
    def __init__(
        self, fm: FishModel, slots: int, context: int, graphs: bool, compiled: bool = False
    ) -> None:
        model = fm.model
        config = model.config
        self.fm, self.model, self.device = fm, model, fm.device
        self.slots = slots
        self.context = min(context, int(config.max_seq_len))
        self.m = Model.of(model, model.tokenizer.get_token_id(fm.fish.IM_END_TOKEN))
        self.graphs = graphs and self.device.type == "cuda"
        self.passes: Passes = EAGER
        if compiled:
            from worker.engines.fish.compiled import CompiledPasses

            self.passes = CompiledPasses()
        # Compiled units see 2 rows at least (compiled.py): a spare row when slots is 1.
        self.rows_sizes = row_buckets(slots, smallest=2 if compiled else 1)
        self.length_sizes = length_buckets(self.context)
        with torch.device(self.device):
            self.caches = self._caches(fm.precision)
            self.state = self._slots()
        self._pinned = self.device.type == "cuda"
        self._uploads: torch.cuda.Stream | None = None
        if self._pinned:
            self._uploads = torch.cuda.Stream(device=self.device)  # type: ignore[no-untyped-call]
        self._graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self.phases: dict[str, float] = {}  # capture's seconds, by part

    def _caches(self, dtype: torch.dtype) -> Caches:
        config, slots = self.model.config, self.rows_sizes[-1]
        slow = (config.n_layer, slots, config.n_local_heads, self.context, config.head_dim)
        fast = (
            config.n_fast_layer,
            slots,
            config.fast_n_local_heads,
            config.num_codebooks,
            config.fast_head_dim,
        )
        return Caches(
            keys=torch.zeros(slow, dtype=dtype),
            values=torch.zeros(slow, dtype=dtype),
            fast_keys=torch.zeros(fast, dtype=dtype),
            fast_values=torch.zeros(fast, dtype=dtype),
        )

    def _slots(self) -> Slots:
        n, rows = self.rows_sizes[-1], self.m.rows
        return Slots(
            index=torch.arange(n),
            tokens=torch.zeros((n, rows), dtype=torch.long),
            positions=torch.full((n,), self.parked, dtype=torch.long),  # all free
            counts=torch.zeros(n, dtype=torch.long),
            history=torch.zeros((n, rows, WINDOW), dtype=torch.long),
            knobs=torch.ones((n, 4), dtype=torch.float32),
            seeds=torch.zeros((n, 1), dtype=torch.long),
            active=torch.zeros(n, dtype=torch.bool),
            ended=torch.zeros(n, dtype=torch.bool),
            end_at=torch.zeros(n, dtype=torch.long),
            codes=torch.zeros((n, self.m.codebooks, self.context), dtype=torch.int32),
        )

    @property
    def cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in vars(self.caches).values())

    def _run(self, rows: int, length: int) -> None:
        decode_step(self.m, self.caches, self.state, rows, length, self.passes)

    @torch.inference_mode()
    def join(self, slot: int, prompt: torch.Tensor, sampling: Sampling, seed: int) -> None:
        """Prefill `slot` with the prompt (rows, length) and make it decode from its end."""
        self.join_many([Newcomer(slot, prompt, sampling, seed)])

    @torch.inference_mode()
    def join_many(self, newcomers: list[Newcomer]) -> None:
        """Prefill the newcomers' slots and set their state, on the current stream."""
        self.activate(self.prefill_many(newcomers))

    @torch.inference_mode()
    def prefill_many(self, newcomers: list[Newcomer]) -> Prefilled:
        """Fill each newcomer's (free) slot with its prompt, in one forward, on the current stream.

        The inputs go up as three tensors for all newcomers (`_upload`).
        (Asynchronous copies from pinned buffers released at once hung an H200
        run: end-of-speech counts came back corrupt once admissions overlapped
        queued steps. Not diagnosed further.)
        """
        count = len(newcomers)
        longest = max(n.prompt.shape[1] for n in newcomers)
        rows = self.m.rows
        tokens = torch.zeros((count, longest - 1, rows), dtype=torch.long)
        state = torch.zeros((count, rows + 3), dtype=torch.long)  # as Prefilled.state
        for i, n in enumerate(newcomers):
            length = n.prompt.shape[1]
            if length >= self.context:  # its last position is where free slots are parked
                raise ValueError(f"a prompt of {length} columns leaves no room in {self.context}")
            tokens[i, : length - 1] = n.prompt[:, :-1].t()
            state[i, :rows] = n.prompt[:, -1]
            state[i, rows:] = torch.tensor([n.slot, length - 1, n.seed])
        knob_rows = torch.tensor(
            [knobs(n.sampling.temperature, n.sampling.top_p, n.sampling.repetition_penalty)
             for n in newcomers],
            dtype=torch.float32,
        )  # fmt: skip
        tokens, state, knob_rows = self._upload(tokens, state, knob_rows)
        prefill(self.m, self.caches, state[:, rows], tokens, self.passes)
        done = fence(self.device)
        return Prefilled(Handoff(state, done), Handoff(knob_rows, done))

    @torch.inference_mode()
    def activate(self, prefilled: Prefilled) -> None:
        """Set the prefilled newcomers' slot state, on the current stream (after their prefill)."""
        stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        state, knob_rows = prefilled.state.on(stream), prefilled.knobs.on(stream)
        rows = self.m.rows
        slots = state[:, rows]
        s = self.state
        s.tokens[slots] = state[:, :rows]
        s.positions[slots] = state[:, rows + 1]
        s.seeds[slots] = state[:, rows + 2 :]
        s.knobs[slots] = knob_rows
        for zeroed in (s.counts, s.history, s.ended, s.end_at):
            zeroed[slots] = 0
        s.active[slots] = True

    def _upload(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Host tensors onto the device for the current stream, without waiting for its queue.

        A copy from pageable memory returns once its data is staged, so the host
        tensors may go at once; on the uploads' own idle stream it waits for
        nothing else. On the decode stream it used to wait for every queued step,
        once per admission: the host stalled while the device drained, then
        prefilled while the device idled. The current stream waits for the copies.
        """
        if self._uploads is None:
            return [t.to(self.device) for t in tensors]
        consumer = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._uploads):
            copies = [Handoff.now(t.to(self.device)) for t in tensors]
        return [copy.on(consumer) for copy in copies]

    def leave(self, slot: int) -> None:
        self.state.active[slot] = False
        self.state.positions[slot] = self.parked

    @property
    def parked(self) -> int:
        """The position of a free slot, past every prompt's end."""
        return self.context - 1

    @torch.inference_mode()
    def step(self, rows: int, longest: int) -> None:
        """One token for slots 0..rows-1; no row reaches past position `longest` - 1."""
        size, length = bucket(rows, self.rows_sizes), bucket(longest, self.length_sizes)
        graph = self._graphs.get((size, length))
        if graph is not None:
            graph.replay()
        else:
            self._run(size, length)

    @torch.inference_mode()
    def capture(self) -> float:
        """Record a CUDA graph for every bucket; only while no slot is in use."""
        if not self.graphs:
            return 0.0
        started = time.perf_counter()
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up runs (cuBLAS handles, kernel selection)
            self._probe_attention()  # the first run: it compiles the units, if compiled
            torch.cuda.synchronize()
            self.phases["first_step"] = round(time.perf_counter() - started, 2)
            for rows, length in itertools.product(self.rows_sizes, self.length_sizes):
                self._run(rows, length)
            torch.cuda.synchronize()
        torch.cuda.current_stream().wait_stream(side)
        self.phases["warm_up_steps"] = round(time.perf_counter() - started, 2)
        for rows in reversed(self.rows_sizes):  # the largest first: the rest reuse its pool
            for length in reversed(self.length_sizes):
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self._run(rows, length)
                self._graphs[(rows, length)] = graph
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        self.phases["graphs"] = round(seconds - self.phases["warm_up_steps"], 2)
        log.info("decode steps captured", graphs=len(self._graphs), seconds=round(seconds, 2))
        return seconds

    def _probe_attention(self) -> None:
        try:
            self._run(self.rows_sizes[-1], self.length_sizes[-1])
            torch.cuda.synchronize()
        except RuntimeError as exc:  # no SDPA kernel for these shapes on this GPU
            log.warning("SDPA refused the decode step; plain attention instead", error=str(exc))
            Attention.sdpa = False

    def snapshot(self, rows: int) -> Snapshot:
        """Copy rows' end-of-speech flags to the host without waiting for the device."""
        ended = torch.empty(rows, dtype=torch.bool, pin_memory=self._pinned)
        end_at = torch.empty(rows, dtype=torch.long, pin_memory=self._pinned)
        ended.copy_(self.state.ended[:rows], non_blocking=True)
        end_at.copy_(self.state.end_at[:rows], non_blocking=True)
        return Snapshot(Handoff.now(ended), end_at)

    def codes(self, slot: int, start: int, end: int) -> Handoff:
        """A copy of `slot`'s codes for columns start..end-1, on the device."""
        return Handoff.now(self.state.codes[slot, :, start:end].clone())
