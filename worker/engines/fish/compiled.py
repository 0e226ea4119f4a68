"""The decode step's repeated units through torch.compile: fewer, fused kernels.

At batch 1 the step is bound by kernel launches (about 1,600 per step eagerly),
and the same few units run over and over: a slow layer before and after its
attention (28 times a step), a fast layer before and after its attention (40
times) and a residual codebook's head and draw (9 times). Each unit is
compiled once for all its layers and positions (the weights are arguments,
not constants), with the batch's rows as the one dynamic size: start-up
compiles five small graphs instead of the whole unrolled step (which took
minutes). The keys and values are written into the cache in place by the
unit that computes them (`slow_in`, `fast_in`: one kernel, where eager writes
took two more a layer). Attention stays eager (SDPA; a fast layer's over the
codebook positions so far, by slicing), and so does the main token's draw
(Inductor cannot generate a scan over the 155,776-token vocabulary with a
dynamic row count). The runner captures the compiled units inside its CUDA
graphs as before; nothing is compiled once the graphs are recorded.

Measured on an H200 (docs/benchmarks.md): 1,337 kernels a step against 1,598
eager. Compiling each fast position whole instead (the position as a tensor,
attention over all ten codebook slots masked, the KV writes inside) came to
1,481 and was slower: the writes into the cache, an input of the graph, cost
copies.

A unit that Inductor fails on runs eagerly instead, with a warning: slower,
never wrong. Rows start at 2 when compiled (runner.py): a size of 1 would be
specialised by Dynamo and cost a second compile of every unit, so a one-row
call (a one-token prefill) runs eagerly. The CPU tests
compile the same units with Inductor's C++ backend (test_compiled.py): each
compiles, once whatever the row count, and decodes what the eager step does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from shoal.logs import get_logger
from worker.engines.fish import step
from worker.engines.fish.step import Caches, Layer, Model, Pair, Passes

log = get_logger(__name__)


class _Unit:
    """One compiled function; eager for good should its first (compiling) call fail."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.name = function.__name__
        self.function = function
        self.compiled = torch.compile(function, dynamic=False, fullgraph=True)
        self.ran = False
        self.failed = False

    def __call__(self, *args: Any, rows: tuple[Tensor, ...]) -> Any:
        """The function of `args`, compiled with dim 0 of `rows` dynamic (the batch's rows).

        Eager once it failed to compile, and for a single row, which Dynamo
        would specialise and compile a second time (a one-token prefill, say).
        """
        if self.failed or rows[0].shape[0] < 2:
            return self.function(*args)
        for tensor in rows:
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
        try:
            result = self.compiled(*args)
        except Exception as exc:
            if self.ran:  # it compiled: a real error
                raise
            log.warning("a decode unit does not compile; it runs eagerly", unit=self.name,
                        error=str(exc)[:500])  # fmt: skip
            self.failed = True
            return self.function(*args)
        self.ran = True
        return result


class CompiledPasses(Passes):
    def __init__(self) -> None:
        functions: list[Callable[..., Any]] = [
            step.slow_in, step.slow_out, step.fast_in, step.fast_out, step.fast_draw
        ]  # fmt: skip
        self.units = {f.__name__: _Unit(f) for f in functions}

    def slow_in(
        self, layer: Layer, h: Tensor, rotation: Tensor, cache: Pair, at: Pair
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        unit = self.units["slow_in"]
        return unit(layer, h, rotation, cache, at, rows=(h, rotation, *at))

    def slow_out(self, layer: Layer, h: Tensor, attended: Tensor) -> Tensor:
        return self.units["slow_out"](layer, h, attended, rows=(h, attended))

    def fast(self, m: Model, caches: Caches, f: Tensor, position: int, rows: Tensor) -> Tensor:
        return step.fast_eager(m, caches, f, position, rows, self._fast_in, self._fast_out)

    def _fast_in(self, layer: Layer, f: Tensor, rotation: Tensor, cache: Pair, at: Pair) -> Tensor:
        return self.units["fast_in"](layer, f, rotation, cache, at, rows=(f, at[0]))

    def _fast_out(self, layer: Layer, f: Tensor, attended: Tensor) -> Tensor:
        return self.units["fast_out"](layer, f, attended, rows=(f, attended))

    def fast_draw(
        self, m: Model, f: Tensor, previous: Tensor, knobs: Tensor, draw: Tensor
    ) -> Tensor:
        unit = self.units["fast_draw"]
        return unit(m, f, previous, knobs, draw, rows=(f, previous, knobs, draw))

    @property
    def eager_units(self) -> list[str]:
        """The units that fell back to eager."""
        return [name for name, unit in self.units.items() if unit.failed]
