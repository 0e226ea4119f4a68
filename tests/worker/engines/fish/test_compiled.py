"""The compiled units on the CPU (Inductor's C++ backend): the step the GPU compiles.

The engine compiles only on CUDA, where a unit that fails to compile falls back
to eager with a warning: slower, and easy to miss. Here the same units compile
for the CPU, with every one of them compiled and none compiled twice as the
batch's row count changes, and the compiled step decodes what the eager one does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from worker.engines.fish import step
from worker.engines.fish.compiled import CompiledPasses
from worker.engines.fish.model import FishModel
from worker.engines.fish.prompt import Sampling
from worker.engines.fish.runner import ModelRunner

STEPS = 12
HIDDEN_TOLERANCE = 1e-4  # relative: fused kernels round differently


def _decode(runner: ModelRunner) -> tuple[torch.Tensor, torch.Tensor]:
    """Three greedy sequences for STEPS steps, then two more with the last one gone:
    the codes of all three, and the slow transformer's hidden state at the end."""
    for slot in range(3):
        prompt = torch.full((runner.m.rows, 20 + slot), slot, dtype=torch.long)
        runner.join(slot, prompt, Sampling(temperature=0.0), seed=slot)
    for _ in range(STEPS):
        runner.step(3, 64)
    runner.leave(2)
    for _ in range(2):
        runner.step(2, 64)  # another row count: dynamic, not compiled again
    with torch.inference_mode():
        hidden = step.slow_step(runner.m, runner.caches, runner.state, 2, 64, runner.passes)
    return runner.state.codes[:3, :, : STEPS + 2].clone(), hidden


def test_every_unit_compiles_once_and_decodes_as_eager(
    model: FishModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    eager_codes, eager_hidden = _decode(ModelRunner(model, 3, 512, graphs=False))
    graphs = counters["stats"]["unique_graphs"]
    runner = ModelRunner(model, 3, 512, graphs=False, compiled=True)
    compiled_codes, compiled_hidden = _decode(runner)
    assert isinstance(runner.passes, CompiledPasses)
    assert runner.passes.eager_units == []  # none fell back to eager
    assert counters["stats"]["unique_graphs"] - graphs == len(runner.passes.units)
    assert torch.equal(compiled_codes, eager_codes)
    relative = (compiled_hidden - eager_hidden).norm() / eager_hidden.norm()
    assert float(relative) < HIDDEN_TOLERANCE
    # A two-column prompt prefills one row: eagerly, not a compile for size 1.
    runner.join(2, torch.zeros((runner.m.rows, 2), dtype=torch.long), Sampling(), seed=9)
    assert counters["stats"]["unique_graphs"] - graphs == len(runner.passes.units)
