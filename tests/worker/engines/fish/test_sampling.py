"""Per-row sampling: upstream's distribution, row by row, and generators of their own."""

from __future__ import annotations

import pytest
import torch

from worker.engines.fish._compat import load_fish
from worker.engines.fish.sampling import (
    LONG_ROW,
    distribution,
    knobs,
    prefix_sums,
    sample,
    uniforms,
)


@pytest.fixture(scope="module")
def upstream() -> object:
    load_fish()  # its import workarounds first
    from fish_speech.models.text2semantic import inference

    return inference.logits_to_probs


# 300 tokens scan in one go; 5,000 in blocks (prefix_sums), as the real vocabulary does.
@pytest.mark.parametrize("vocab", [300, LONG_ROW + 904])
def test_each_row_gets_upstreams_distribution_with_its_own_knobs(
    upstream: object, vocab: int
) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, vocab, generator=generator) * 3
    previous = torch.randint(0, vocab, (3, 16), generator=generator)
    rows = [(0.8, 0.8, 1.1), (0.3, 0.95, 1.5), (1.0, 0.5, 1.0)]
    table = torch.tensor([knobs(*row) for row in rows])
    probs, index = distribution(logits, previous, table)
    ours = torch.zeros_like(probs).scatter_(1, index, probs)
    for row, (temperature, top_p, penalty) in enumerate(rows):
        theirs = upstream(  # type: ignore[operator]
            logits[row].clone(),
            temperature=torch.tensor(temperature),
            top_p=torch.tensor(top_p),
            repetition_penalty=torch.tensor(penalty),
            previous_tokens=previous[row],
        )
        torch.testing.assert_close(ours[row], theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [LONG_ROW + 1, 155_776])  # a ragged last block; S1-mini's vocabulary
def test_prefix_sums_of_long_rows_are_the_cumulative_sums(n: int) -> None:
    x = torch.rand(3, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(prefix_sums(x), x.cumsum(-1), rtol=1e-12, atol=0)
    sums = prefix_sums(x.float())
    assert sums.shape == x.shape
    # Still a CDF to search: any dip at a block's edge is the rounding of the total.
    rounding = 4 * torch.finfo(torch.float32).eps * float(sums[:, -1].max())
    assert float(sums.diff(dim=-1).min()) >= -rounding


def test_a_rows_draws_depend_on_its_seed_and_counter_alone() -> None:
    seeds = torch.tensor([[1], [2], [3]])
    counters = torch.tensor([[0], [5], [7]])
    together = uniforms(seeds, counters, 11)
    alone = uniforms(seeds[1:2], counters[1:2], 11)
    assert torch.equal(together[1:2], alone)  # the batch around it changes nothing
    assert not torch.equal(uniforms(seeds, counters + 1, 11), together)  # next step
    assert not torch.equal(together[0], together[1])
    assert bool(((together > 0) & (together < 1)).all())


def test_draws_are_uniform_enough_to_sample_with() -> None:
    seeds = torch.arange(4096)[:, None]
    values = uniforms(seeds, torch.zeros_like(seeds), 4).flatten()
    histogram = torch.histc(values, bins=10, min=0, max=1)
    assert float(histogram.min()) > 0.9 * len(values) / 10


def test_sampling_follows_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(4000, 3)
    previous = torch.zeros((4000, 1), dtype=torch.long)
    table = torch.tensor([knobs(1.0, 1.0, 1.0)]).expand(4000, 4)
    seeds = torch.arange(4000)[:, None]
    drawn = sample(logits, previous, table, uniforms(seeds, torch.zeros_like(seeds), 1))
    shares = torch.bincount(drawn, minlength=3).float() / 4000
    torch.testing.assert_close(shares, torch.tensor([0.6, 0.3, 0.1]), atol=0.03, rtol=0)


def test_temperature_zero_is_greedy_after_the_penalty() -> None:
    logits = torch.tensor([[5.0, 4.9, -1.0], [5.0, 4.9, -1.0]])
    previous = torch.tensor([[0], [2]])  # row 0 has just said token 0
    table = torch.tensor([knobs(0.0, 0.8, 1.5), knobs(0.0, 0.8, 1.5)])
    u = torch.full((2, 1), 0.99)
    assert sample(logits, previous, table, u).tolist() == [1, 0]
