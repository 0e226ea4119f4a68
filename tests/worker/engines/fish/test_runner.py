"""The model runner on the CPU in fp32: against fish-speech's own unbatched model, and
a sequence inside a batch of mixed lengths against the same sequence alone.

Batched matrix products may round differently from unbatched ones, so logits are
compared within a stated tolerance, and codes exactly under greedy sampling,
where only a near-tie could flip a token (none does with these weights). The
seeded draws are compared exactly too: on the CPU in fp32 the batch changes
nothing, as the engine promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from worker.engines.fish import step
from worker.engines.fish.model import FishModel
from worker.engines.fish.prompt import Sampling, build_prompt
from worker.engines.fish.runner import (
    ModelRunner,
    Newcomer,
    bucket,
    length_buckets,
    row_buckets,
)

# fp32 on the CPU: the runner's arithmetic against upstream's, and batched against alone.
UPSTREAM_TOLERANCE = 1e-5  # relative, logits of the same token
BATCH_TOLERANCE = 1e-4


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_buckets_cover_every_size() -> None:
    assert row_buckets(64) == [1, 2, 8, 16, 32, 48, 64]
    assert row_buckets(3) == [1, 2, 3]
    assert row_buckets(1, smallest=2) == [2] and row_buckets(40, smallest=2)[:2] == [2, 8]
    assert length_buckets(4096) == [512, 1024, 2048, 4096]
    assert bucket(17, row_buckets(64)) == 32 and bucket(513, length_buckets(4096)) == 1024


@torch.inference_mode()
def test_the_batched_passes_compute_the_unbatched_models_logits(model: FishModel) -> None:
    runner = ModelRunner(model, slots=3, context=4096, graphs=False)
    fish = model.model
    prompt = build_prompt(model, "Hello there, how are you today?", [], runner.context)
    length = prompt.shape[1]
    fish.setup_caches(1, fish.config.max_seq_len, dtype=torch.float32)
    theirs = fish.forward_generate(prompt[None], torch.arange(length))
    runner.join(1, prompt, Sampling(), seed=0)  # slot 1 of 3: the other rows are idle
    hidden = step.slow_step(runner.m, runner.caches, runner.state, 3, 128)
    ours = runner.m.logits(hidden)[1]
    assert _relative(ours, theirs.logits[0, -1]) < UPSTREAM_TOLERANCE
    # The fast transformer over the codebooks, fed the same codes.
    for layer in fish.fast_layers:
        layer.attention.kv_cache.k_cache.zero_()
        layer.attention.kv_cache.v_cache.zero_()
    fish.forward_generate_fast(fish.fast_project_in(theirs.hidden_states), torch.tensor([0]))
    step.fast_logits(runner.m, runner.caches, runner.m.fast_project(hidden[1:2].clone()), 0)
    for position, code in enumerate([3, 7, 11], start=1):
        embedded = fish.fast_embeddings(torch.tensor([[code]]))
        upstream = fish.forward_generate_fast(embedded, torch.tensor([position]))[0, 0, :1024]
        mine = step.fast_logits(runner.m, runner.caches, embedded[0], position)[0]
        assert _relative(mine, upstream) < UPSTREAM_TOLERANCE


@dataclass
class Run:
    """One sequence driven through the runner: its codes and per-step main logits."""

    prompt: torch.Tensor
    seed: int
    steps: int
    slot: int | None = None
    logits: list[torch.Tensor] = field(default_factory=list)
    codes: torch.Tensor | None = None


def _drive(
    runner: ModelRunner, runs: list[Run], joins: dict[int, list[int]], knobs: Sampling
) -> None:
    """Step the runner; run i joins at the step `joins` names, each leaves after its steps."""
    active: dict[int, Run] = {}
    done = 0
    tick = 0
    free = list(range(runner.slots))
    while done < len(runs):
        newcomers = []
        for index in joins.get(tick, []):  # the newcomers of a step join together
            run = runs[index]
            run.slot = free.pop(0)
            newcomers.append(Newcomer(run.slot, run.prompt, knobs, run.seed))
            active[run.slot] = run
        if newcomers:
            runner.join_many(newcomers)
        if active:
            rows = max(active) + 1
            longest = max(int(runner.state.positions[s]) + 1 for s in active)
            length = bucket(longest, runner.length_sizes)
            hidden = step.slow_step(runner.m, runner.caches, runner.state, rows, length)
            logits = runner.m.logits(hidden)
            for slot, run in active.items():
                run.logits.append(logits[slot])
            runner.step(rows, longest)
            for slot, run in list(active.items()):
                if int(runner.state.counts[slot]) == run.steps:
                    run.codes = runner.state.codes[slot, :, : run.steps].clone()
                    runner.leave(slot)
                    del active[slot]
                    free.append(slot)
                    free.sort()
                    done += 1
        tick += 1


# When each sequence joins: (0 first, 1 at step 3, 2 at step 5, 3 at step 16 in the
# slot 1 left), or 0 and 2 prefilled together, padded to the longer prompt.
SCHEDULES = {
    "staggered": {0: [0], 3: [1], 5: [2], 16: [3]},
    "prefilled_together": {0: [0, 2], 3: [1], 16: [3]},
}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("temperature", [0.0, 0.8], ids=["greedy", "seeded"])
@torch.inference_mode()
def test_a_sequence_in_a_batch_of_mixed_lengths_decodes_as_alone(
    model: FishModel, temperature: float, schedule: str
) -> None:
    knobs = Sampling(temperature=temperature)
    texts = ["Short one.", "A much longer sentence that goes on for a while.", "Mid length."]
    texts.append("And a late newcomer takes a freed slot.")

    def runs() -> list[Run]:
        prompts = [build_prompt(model, text, [], 4096) for text in texts]
        return [
            Run(p, seed=10 + i, steps=s)
            for i, (p, s) in enumerate(zip(prompts, [30, 12, 20, 15], strict=True))
        ]

    alone = runs()
    for index in range(len(alone)):  # each by itself
        _drive(ModelRunner(model, 3, 4096, graphs=False), [alone[index]], {0: [0]}, knobs)
    batched = runs()
    runner = ModelRunner(model, 3, 4096, graphs=False)
    _drive(runner, batched, SCHEDULES[schedule], knobs)
    assert batched[3].slot == batched[1].slot  # the newcomer took the slot 1 left
    for one, many in zip(alone, batched, strict=True):
        assert one.codes is not None and many.codes is not None
        assert torch.equal(one.codes, many.codes)
        for ours, theirs in zip(many.logits, one.logits, strict=True):
            assert _relative(ours, theirs) < BATCH_TOLERANCE
    # The draws are not all alike: the seeded run samples, the greedy run does not.
    assert len({tuple(r.codes[0].tolist()) for r in batched if r.codes is not None}) == 4


@torch.inference_mode()
def test_a_prompt_of_one_column_decodes_from_the_start(model: FishModel) -> None:
    runner = ModelRunner(model, 2, 1024, graphs=False)
    prompt = build_prompt(model, "Hi.", [], 1024)[:, :1]
    run = Run(prompt, seed=1, steps=5)
    _drive(runner, [run], {0: [0]}, Sampling())
    assert run.codes is not None and run.codes.shape == (runner.m.codebooks, 5)


@torch.inference_mode()
def test_steps_between_a_prefill_and_its_activation_leave_the_prompts_cache_alone(
    model: FishModel,
) -> None:
    """The admission thread prefills a free slot while steps go on: they must not write there.

    A step computes every row up to its highest running slot, free ones too, and
    writes their keys at their positions; a free slot's is parked past every prompt.
    """
    runner = ModelRunner(model, slots=3, context=1024, graphs=False)
    short, long = (build_prompt(model, t, [], 1024) for t in ("Hi.", "A longer prompt, this."))
    runner.join(1, short, Sampling(), seed=1)
    for _ in range(3):
        runner.step(3, short.shape[1] + 3)
    runner.leave(1)  # slot 1 was at a position inside the next, longer prompt
    runner.join(2, short, Sampling(), seed=2)  # keeps slots 0..2 stepping
    prefilled = runner.prefill_many([Newcomer(1, long, Sampling(), seed=3)])
    prompt_keys = runner.caches.keys[:, 1, :, : long.shape[1] - 1].clone()
    for _ in range(4):  # slot 1 is free, not yet active: it computes, as a free row
        runner.step(3, short.shape[1] + 8)
    assert torch.equal(runner.caches.keys[:, 1, :, : long.shape[1] - 1], prompt_keys)
    assert int(runner.state.positions[0]) == int(runner.state.positions[1]) == runner.parked
    runner.activate(prefilled)
    assert int(runner.state.positions[1]) == long.shape[1] - 1
    assert bool(runner.state.active[1]) and int(runner.state.counts[1]) == 0


def test_prefill_attention_never_takes_cudnns_backend(
    model: FishModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cuDNN builds a plan per new shape (tens of ms); prefill shapes are rarely seen twice."""
    backends: list[tuple[bool, bool]] = []
    attend = torch.nn.functional.scaled_dot_product_attention

    def recorded(*args: Any, **kwargs: Any) -> torch.Tensor:
        cuda = torch.backends.cuda
        backends.append((cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled()))  # type: ignore[no-untyped-call]
        return attend(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recorded)
    runner = ModelRunner(model, 2, 1024, graphs=False)
    runner.join(0, build_prompt(model, "Hi there.", [], 1024), Sampling(), seed=1)
    assert backends == [(False, True)] * len(runner.m.slow)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # type: ignore[no-untyped-call]  # only while prefilling


def test_the_cache_is_sized_from_the_config_and_the_context(model: FishModel) -> None:
    runner = ModelRunner(model, slots=4, context=1024, graphs=False)
    config = model.model.config
    assert runner.caches.keys.shape == (
        config.n_layer,
        4,
        config.n_local_heads,
        1024,
        config.head_dim,
    )
    capped = ModelRunner(model, slots=1, context=100_000, graphs=False)
    assert capped.context == config.max_seq_len  # never past the model's positions
