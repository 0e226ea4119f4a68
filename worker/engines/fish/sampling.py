"""Fish-speech's sampler, one row per sequence, with a generator of its own per row.

The distribution is that of fish-speech 0.1.0's `logits_to_probs`: a
repetition penalty over the last 16 tokens, nucleus (top-p) filtering, then
temperature; every knob is a column of per-row values instead of one scalar.
The draw is an inverse-CDF lookup of one uniform number per row, which is an
exact multinomial draw and needs no noise tensor over the vocabulary.

Randomness: instead of a shared torch generator, whose state would depend on
what else is in the batch, each uniform hashes (the row's seed, the row's
token counter, which draw of the step) into a number. That counter-based
generator makes a sequence's draws the same whatever batch it runs in, and
needs no generator state inside a CUDA graph, so the batch changes a job's
audio only through the floating-point rounding of batched matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW = 16  # upstream's repetition-penalty window
_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
# Up to FEW_ROWS rows longer than LONG_ROW are scanned in blocks of BLOCK (prefix_sums).
BLOCK = 128
LONG_ROW = 4096
FEW_ROWS = 32

# Columns of a slot's knobs.
INV_TEMPERATURE, TOP_P, PENALTY, GREEDY = range(4)


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash (Thomas Mueller's), in int64 arithmetic that never overflows."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    return (x >> 16) ^ x


def uniforms(seeds: Tensor, counters: Tensor, draws: int) -> Tensor:
    """(rows, draws) float32 in (0, 1): a function of each row's seed and counter alone.

    `seeds` and `counters` are (rows, 1) int64 below 2**32.
    """
    key = _mix(_mix(seeds) ^ _mix(counters))
    draw = torch.arange(draws, device=seeds.device, dtype=torch.int64)
    bits = _mix((key + draw * _GOLDEN) & _MASK32)
    return ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def knobs(temperature: float, top_p: float, repetition_penalty: float) -> list[float]:
    """A slot's knobs row; temperature 0 means greedy."""
    greedy = temperature <= 0
    return [1.0 / max(temperature, 1e-5), top_p, repetition_penalty, float(greedy)]


def prefix_sums(x: Tensor) -> Tensor:
    """`x.cumsum(-1)` of (rows, n): the same sums, in blocks when rows are long.

    CUDA scans a row in one thread block: over the 155,776-token vocabulary
    at batch 1 a scan took 0.2 ms on an H200, 4 % of the decode step. Blocks of
    `BLOCK` are scanned side by side, then a scan of their totals carries
    between them; only the rounding order differs from one long scan. With
    many rows the plain scan is the faster (docs/benchmarks.md: at 64 rows the
    blocks took 0.46 ms a scan against 0.25).
    """
    rows, n = x.shape
    if n <= LONG_ROW or rows > FEW_ROWS:
        return x.cumsum(-1)
    if n % BLOCK:
        x = F.pad(x, (0, -n % BLOCK))
    blocks = x.view(rows, -1, BLOCK).cumsum(-1)
    carry = F.pad(blocks[..., -1].cumsum(-1)[:, :-1], (1, 0))
    return (blocks + carry[..., None]).flatten(1)[:, :n]


def _nucleus(logits: Tensor, previous: Tensor, knobs: Tensor) -> tuple[Tensor, Tensor]:
    """The penalized logits in descending order, those outside the top-p nucleus at -inf,
    and the vocabulary index of each."""
    logits = logits.to(torch.float32, copy=True)  # penalized in place below
    penalty = knobs[:, PENALTY : PENALTY + 1]
    score = torch.gather(logits, 1, previous)
    score = score * torch.where(score < 0, penalty, 1.0 / penalty)
    logits.scatter_(1, previous, score)
    ordered, index = torch.sort(logits, dim=-1, descending=True)
    # A softmax left unnormalized: the mass is compared with top_p times the
    # total, and a sorted row's maximum is its first entry (no reduction needed;
    # a softmax, like a scan, takes one thread block per row).
    mass = prefix_sums(torch.exp(ordered - ordered[:, :1]))
    drop = mass > knobs[:, TOP_P : TOP_P + 1] * mass[:, -1:]
    drop[:, 0] = False  # keep at least one option
    return ordered.masked_fill(drop, float("-inf")), index


def _tempered(kept: Tensor, knobs: Tensor) -> Tensor:
    """The nucleus's unnormalized probabilities at each row's temperature."""
    return torch.exp((kept - kept[:, :1]) * knobs[:, INV_TEMPERATURE : INV_TEMPERATURE + 1])


def distribution(logits: Tensor, previous: Tensor, knobs: Tensor) -> tuple[Tensor, Tensor]:
    """Upstream's sampling probabilities, in descending order of (penalized) logit.

    `logits` (rows, vocab); `previous` (rows, k) token ids to penalize; `knobs`
    (rows, 4). Returns (probabilities, the vocabulary index of each).
    """
    kept, index = _nucleus(logits, previous, knobs)
    weights = _tempered(kept, knobs)
    return weights / weights.sum(-1, keepdim=True), index


def sample(logits: Tensor, previous: Tensor, knobs: Tensor, uniform: Tensor) -> Tensor:
    """One token per row (rows,) int64, drawn with the row's `uniform` (rows, 1)."""
    kept, index = _nucleus(logits, previous, knobs)
    cdf = prefix_sums(_tempered(kept, knobs))
    choice = torch.searchsorted(cdf, uniform * cdf[:, -1:]).clamp_(max=cdf.shape[-1] - 1)
    choice = torch.where(knobs[:, GREEDY : GREEDY + 1] > 0, 0, choice)
    return torch.gather(index, 1, choice).squeeze(1)
