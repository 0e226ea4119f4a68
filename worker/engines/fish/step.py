"""S1-mini's forward passes for a continuous batch, from the model's own weights.

fish-speech's `forward_generate` puts every row of a batch at one position and
writes its KV cache at one index for all rows. A continuous batch needs each
row (one slot, one sequence) at its own position, with its own KV writes and
its own attention mask. These functions compute the same layers (the same
weights, norms, rotary embedding and grouped-query attention) that way, over a
KV cache the runner owns:

- `prefill` fills the caches of a step's newcomers with their prompts but
  their last columns, all in one forward;
- `decode_step` runs one column for every row: the slow transformer at each
  row's position, the main token, then the fast transformer over the
  codebooks, sampling each with the row's own knobs and generator; it writes
  the new column into the slot state and flags end of speech on the device.

The prompt's last column is decoded by the first step, so prefill never
samples and a sequence's first token is drawn exactly like every later one.

The step runs eagerly and is captured as a CUDA graph (runner.py), so its cost
is its kernel count: norms are PyTorch's fused `rms_norm`, the rotary
embedding is one complex product for queries and keys together, w1 and w3 are
one matrix, residuals are added by in-place `addmm_`, attention is SDPA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from worker.engines.fish.sampling import PENALTY, WINDOW, sample, uniforms

FAST_VOCAB = 1024  # upstream samples the residual codebooks from their first 1024 logits
# Prefill attention without cuDNN's: it builds a plan for each new shape (tens of
# ms on Hopper, where PyTorch may prefer it), and a prefill's shape (newcomers x
# longest prompt) is new almost every time. FlashAttention plans in microseconds.
# PyTorch's backend switches are process-wide: a codec call on its own thread
# during a prefill goes without cuDNN too, which may change its rounding only.
PREFILL_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
Pair = tuple[Tensor, Tensor]  # a layer's cache (keys, values); where to write (slots, positions)


@dataclass
class Layer:
    """One transformer block's weights, laid out for the step."""

    norm: Tensor
    qkv: Tensor
    qk_norm: Tensor | None  # (heads + kv heads, head dim) float32: q_norm's, then k_norm's
    wo: Tensor
    ffn_norm: Tensor
    w13: Tensor  # w1 and w3 stacked: one product
    w2: Tensor
    heads: int
    kv_heads: int
    head_dim: int
    eps: float

    @classmethod
    def of(cls, block: Any, heads: int, kv_heads: int, head_dim: int, eps: float) -> Layer:
        attention, mlp = block.attention, block.feed_forward
        if attention.wqkv.bias is not None or attention.wo.bias is not None:
            raise ValueError("attention biases are not supported (S1-mini has none)")
        w13 = torch.cat([mlp.w1.weight, mlp.w3.weight])
        inner = mlp.w1.weight.shape[0]
        # The module keeps working on views of the stacked matrix: no second copy.
        mlp.w1.weight.data, mlp.w3.weight.data = w13[:inner], w13[inner:]
        qk_norm = None
        if attention.attention_qk_norm:
            q = attention.q_norm.weight.float().expand(heads, head_dim)
            k = attention.k_norm.weight.float().expand(kv_heads, head_dim)
            qk_norm = torch.cat([q, k])
        return cls(
            norm=block.attention_norm.weight,
            qkv=attention.wqkv.weight,
            qk_norm=qk_norm,
            wo=attention.wo.weight,
            ffn_norm=block.ffn_norm.weight,
            w13=w13,
            w2=mlp.w2.weight,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            eps=eps,
        )

    def norm_in(self, h: Tensor) -> Tensor:
        return F.rms_norm(h, (h.shape[-1],), self.norm, self.eps)

    def qkv_of(self, x: Tensor, rotation: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries (rows, heads, dim), keys and values (rows, kv heads, dim), rotated."""
        heads, kv, dim = self.heads, self.kv_heads, self.head_dim
        mixed = F.linear(x, self.qkv)
        rows = x.shape[0]
        qk = mixed[:, : (heads + kv) * dim].view(rows, heads + kv, dim)
        v = mixed[:, (heads + kv) * dim :].view(rows, kv, dim)
        if self.qk_norm is not None:
            qk = F.rms_norm(qk, (dim,), eps=self.eps) * self.qk_norm  # float32
        qk = rotate(qk.float().view(rows, heads + kv, dim // 2, 2), rotation).to(x.dtype)
        return qk[:, :heads], qk[:, heads:], v

    def finish(self, h: Tensor, attended: Tensor) -> Tensor:
        """Output projection, then the feed-forward block; both residuals in place."""
        h.addmm_(attended, self.wo.t())
        gate, up = F.linear(F.rms_norm(h, (h.shape[-1],), self.ffn_norm, self.eps), self.w13).chunk(
            2, dim=-1
        )
        return h.addmm_(F.silu(gate) * up, self.w2.t())


def rotate(pairs: Tensor, rotation: Tensor) -> Tensor:
    """The rotary embedding of float32 pairs (..., dim / 2, 2) by (cos, sin) pairs -> (..., dim).

    Eagerly one complex product (one kernel); under torch.compile, whose code
    generator has no complex numbers, upstream's real arithmetic (fused anyway).
    """
    if torch.compiler.is_compiling():
        x, y = pairs[..., 0], pairs[..., 1]
        cos, sin = rotation[..., 0], rotation[..., 1]
        return torch.stack([x * cos - y * sin, y * cos + x * sin], dim=-1).flatten(-2)
    product = torch.view_as_complex(pairs) * torch.view_as_complex(rotation)
    return torch.view_as_real(product).flatten(-2)


@dataclass
class Model:
    """What the step reads of a fish-speech DualARTransformer."""

    slow: list[Layer]
    fast: list[Layer]
    embeddings: Tensor
    codebook_embeddings: Tensor
    norm: Tensor
    output: Tensor  # the tied embeddings, or the output layer
    fast_embeddings: Tensor
    fast_project: Any  # a module (identity for S1-mini)
    fast_norm: Tensor
    fast_output: Tensor
    codebook_index: Tensor  # (codebooks,) int64: 0, 1, ...: the fast cache's positions
    rotation: Tensor  # (positions, head dim / 2, 2) float32: cos, sin
    fast_rotation: Tensor  # (codebooks, fast head dim / 2, 2) float32
    codebooks: int
    codebook_size: int
    semantic_begin: int
    semantic_end: int
    im_end: int
    scale_codebooks: bool
    eps: float

    @classmethod
    def of(cls, model: Any, im_end: int) -> Model:
        c = model.config
        slow = [
            Layer.of(b, c.n_head, c.n_local_heads, c.head_dim, c.norm_eps) for b in model.layers
        ]
        fast = [
            Layer.of(b, c.fast_n_head, c.fast_n_local_heads, c.fast_head_dim, c.norm_eps)
            for b in model.fast_layers
        ]
        output = model.embeddings.weight if c.tie_word_embeddings else model.output.weight
        return cls(
            slow=slow,
            fast=fast,
            embeddings=model.embeddings.weight,
            codebook_embeddings=model.codebook_embeddings.weight,
            norm=model.norm.weight,
            output=output,
            fast_embeddings=model.fast_embeddings.weight,
            fast_project=model.fast_project_in,
            fast_norm=model.fast_norm.weight,
            fast_output=model.fast_output.weight,
            codebook_index=torch.arange(c.num_codebooks, device=model.freqs_cis.device),
            rotation=model.freqs_cis.float().contiguous(),
            fast_rotation=model.fast_freqs_cis.float().contiguous(),
            codebooks=c.num_codebooks,
            codebook_size=c.codebook_size,
            semantic_begin=model.tokenizer.semantic_begin_id,
            semantic_end=model.tokenizer.semantic_end_id,
            im_end=im_end,
            scale_codebooks=c.scale_codebook_embeddings,
            eps=c.norm_eps,
        )

    @property
    def rows(self) -> int:
        """Token rows of a column: the main token, then one per codebook."""
        return 1 + self.codebooks

    def embed(self, x: Tensor) -> Tensor:
        """Upstream's input embedding of columns x (rows, 1 + codebooks) -> (rows, dim)."""
        offsets = torch.arange(self.codebooks, device=x.device) * self.codebook_size
        codebooks = F.embedding(x[:, 1:] + offsets, self.codebook_embeddings).sum(dim=1)
        semantic = ((x[:, 0] >= self.semantic_begin) & (x[:, 0] <= self.semantic_end))[:, None]
        h = F.embedding(x[:, 0], self.embeddings) + torch.where(semantic, codebooks, 0)
        if self.scale_codebooks:
            h = torch.where(semantic, h / (self.codebooks + 1) ** 0.5, h)
        return h

    def logits(self, h: Tensor) -> Tensor:
        return F.linear(F.rms_norm(h, (h.shape[-1],), self.norm, self.eps), self.output)


@dataclass
class Caches:
    """Keys and values: (layers, slots, kv heads, positions, head dim)."""

    keys: Tensor
    values: Tensor
    fast_keys: Tensor  # (fast layers, slots, fast kv heads, codebooks, fast head dim)
    fast_values: Tensor


@dataclass
class Slots:
    """Per-slot state on the device; row i of every tensor is slot i."""

    index: Tensor  # (slots,) int64: 0, 1, ...: each row's slot, to write at
    tokens: Tensor  # (slots, rows) int64: the column each slot decodes next
    positions: Tensor  # (slots,) int64: that column's position
    counts: Tensor  # (slots,) int64: columns generated so far
    history: Tensor  # (slots, rows, WINDOW) int64: the last columns, a ring
    knobs: Tensor  # (slots, 4) float32: sampling.knobs()
    seeds: Tensor  # (slots, 1) int64
    active: Tensor  # (slots,) bool
    ended: Tensor  # (slots,) bool: end of speech was drawn
    end_at: Tensor  # (slots,) int64: the count at which it was
    codes: Tensor  # (slots, codebooks, context) int32: generated codes by count


class Attention:
    """How decode attention is computed: SDPA, or plain products where SDPA refuses."""

    sdpa = True


def _attend(q: Tensor, keys: Tensor, values: Tensor, bias: Tensor | None) -> Tensor:
    """One query position per row, grouped-query: q (rows, heads, dim) -> (rows, heads * dim).

    The heads sharing a kv head are that head's queries (upstream's repeat_interleave).
    """
    rows, heads, dim = q.shape
    grouped = q.reshape(rows, keys.shape[1], heads // keys.shape[1], dim)
    if Attention.sdpa:
        y = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=bias)
    else:
        scores = (grouped @ keys.transpose(-1, -2)) * dim**-0.5
        if bias is not None:
            scores = scores + bias
        y = torch.softmax(scores.float(), dim=-1).to(values.dtype) @ values
    return y.reshape(rows, heads * dim)


def slow_in(
    layer: Layer, h: Tensor, rotation: Tensor, cache: Pair, at: Pair
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """A slow layer up to attention: the rows' queries, keys and values.

    The keys and values also go into the layer's `cache` (keys, values) at
    `at` (each row's slot, each row's position): written in place, compiled,
    by the kernel that computes them instead of by two of their own.
    """
    q, k, v = layer.qkv_of(layer.norm_in(h), rotation)
    keys, values = cache
    keys[at[0], :, at[1]] = k
    values[at[0], :, at[1]] = v
    return q, k, v


def slow_out(layer: Layer, h: Tensor, attended: Tensor) -> Tensor:
    """A slow layer after attention (in place on h)."""
    return layer.finish(h, attended)


def fast_head(m: Model, f: Tensor) -> Tensor:
    """The residual codebooks' logits (rows, FAST_VOCAB) of the fast transformer's output."""
    normed = F.rms_norm(f, (f.shape[-1],), m.fast_norm, m.eps)
    return F.linear(normed, m.fast_output[:FAST_VOCAB])


def fast_draw(m: Model, f: Tensor, previous: Tensor, knobs: Tensor, draw: Tensor) -> Tensor:
    """A residual codebook's token (rows,) from the fast transformer's output."""
    return sample(fast_head(m, f), previous, knobs, draw)


class Passes:
    """The step's repeated units, eager; compiled.py's subclass runs them through torch.compile."""

    def slow_in(
        self, layer: Layer, h: Tensor, rotation: Tensor, cache: Pair, at: Pair
    ) -> tuple[Tensor, Tensor, Tensor]:
        return slow_in(layer, h, rotation, cache, at)

    def slow_out(self, layer: Layer, h: Tensor, attended: Tensor) -> Tensor:
        return slow_out(layer, h, attended)

    def fast(self, m: Model, caches: Caches, f: Tensor, position: int, rows: Tensor) -> Tensor:
        return fast_eager(m, caches, f, position, rows)

    def fast_draw(
        self, m: Model, f: Tensor, previous: Tensor, knobs: Tensor, draw: Tensor
    ) -> Tensor:
        return fast_draw(m, f, previous, knobs, draw)


EAGER = Passes()


def fast_in(
    layer: Layer, f: Tensor, rotation: Tensor, cache: Pair, at: Pair
) -> Tensor:  # fmt: skip
    """A fast layer up to attention: slow_in's queries, its keys and values into the cache
    at `at` (rows, and the codebook). A function of its own, so compiled apart."""
    return slow_in(layer, f, rotation, cache, at)[0]


def fast_out(layer: Layer, f: Tensor, attended: Tensor) -> Tensor:
    """A fast layer after attention (in place on f)."""
    return layer.finish(f, attended)


def fast_eager(
    m: Model, caches: Caches, f: Tensor, position: int, rows: Tensor,
    layer_in: Callable[..., Tensor] = fast_in,
    layer_out: Callable[..., Tensor] = fast_out,
) -> Tensor:  # fmt: skip
    """The fast transformer at codebook `position` for the slots `rows` (0..n-1), all at it."""
    n = rows.shape[0]
    rotation = m.fast_rotation[position]
    visible = slice(0, position + 1)
    at = (rows, m.codebook_index[position : position + 1])  # broadcast over the rows
    for i, layer in enumerate(m.fast):
        keys, values = caches.fast_keys[i], caches.fast_values[i]
        q = layer_in(layer, f, rotation, (keys, values), at)
        attended = _attend(q, keys[:n, :, visible], values[:n, :, visible], None)
        f = layer_out(layer, f, attended)
    return f


def slow_step(
    m: Model, caches: Caches, slots: Slots, rows: int, length: int, passes: Passes = EAGER
) -> Tensor:
    """The slow transformer for slots 0..rows-1 at their positions: hidden (rows, dim)."""
    positions = slots.positions[:rows]
    h = m.embed(slots.tokens[:rows])
    rotation = m.rotation[positions][:, None]
    visible = torch.arange(length, device=h.device) <= positions[:, None]
    bias = torch.zeros_like(visible, dtype=h.dtype).masked_fill_(~visible, float("-inf"))
    at = (slots.index[:rows], positions)
    for n, layer in enumerate(m.slow):
        keys, values = caches.keys[n], caches.values[n]
        q, _, _ = passes.slow_in(layer, h, rotation, (keys, values), at)
        visible_keys, visible_values = keys[:rows, :, :length], values[:rows, :, :length]
        attended = _attend(q, visible_keys, visible_values, bias[:, None, None])
        h = passes.slow_out(layer, h, attended)
    return h


def fast_logits(m: Model, caches: Caches, f: Tensor, position: int) -> Tensor:
    """The fast transformer's codebook logits at `position` for inputs f (rows, dim)."""
    rows = torch.arange(f.shape[0], device=f.device)
    return fast_head(m, fast_eager(m, caches, f, position, rows))


def decode_step(
    m: Model, caches: Caches, slots: Slots, rows: int, length: int, passes: Passes = EAGER
) -> None:
    """One column for slots 0..rows-1, in place; attention reads positions below `length`.

    Every write goes to a slot tensor, so the step can be captured as a CUDA graph.
    Inactive rows compute too (their slots are free); their results are dropped.
    """
    h = slow_step(m, caches, slots, rows, length, passes)
    counts = slots.counts[:rows, None]
    knobs = slots.knobs[:rows].clone()
    # The first token is drawn without a penalty, as upstream's prefill draws it.
    knobs[:, PENALTY] = torch.where(counts[:, 0] == 0, 1.0, knobs[:, PENALTY])
    window = slots.history[:rows]
    # Upstream penalizes the main token with the window's oldest column (all rows).
    oldest = torch.where(counts >= WINDOW, counts % WINDOW, 0)[:, None].expand(-1, m.rows, 1)
    previous = torch.gather(window, 2, oldest)[..., 0]
    u = uniforms(slots.seeds[:rows], counts, m.rows)
    main = sample(m.logits(h), previous, knobs, u[:, :1])
    column = [main, torch.clamp(main - m.semantic_begin, min=0)]
    index = slots.index[:rows]
    passes.fast(m, caches, m.fast_project(h), 0, index)
    for position in range(1, m.codebooks):
        f = passes.fast(m, caches, F.embedding(column[-1], m.fast_embeddings), position, index)
        draw = u[:, position + 1 : position + 2]
        column.append(passes.fast_draw(m, f, window[:, position + 1], knobs, draw))
    _advance(m, slots, torch.stack(column, dim=1), rows)


def _advance(m: Model, slots: Slots, column: Tensor, rows: int) -> None:
    """Record the new column of each row, flag end of speech, move active rows on."""
    counts = slots.counts[:rows]
    active = slots.active[:rows]
    slots.tokens[:rows] = column
    ring = (counts % WINDOW)[:, None, None].expand(-1, m.rows, 1)
    slots.history[:rows].scatter_(2, ring, column[:, :, None])
    slots.codes[slots.index[:rows], :, counts] = column[:, 1:].to(slots.codes.dtype)
    ended = slots.ended[:rows]
    now = (column[:, 0] == m.im_end) & active & ~ended
    slots.end_at[:rows] = torch.where(now, counts, slots.end_at[:rows])
    ended |= now
    step = active.to(counts.dtype)
    slots.positions[:rows] += step
    counts += step


@sdpa_kernel(PREFILL_ATTENTION)
def prefill(
    m: Model, caches: Caches, slots: Tensor, tokens: Tensor, passes: Passes = EAGER
) -> None:
    """Fill each slot's cache with its prompt: tokens (newcomers, length, rows) on the device.

    One forward for every newcomer of a step, right-padded to the longest: a
    padded position comes after the prompt, so causal attention keeps it out
    of the prompt's keys and values, and the keys it leaves in the cache lie
    past the slot's position, where decode attention never looks before it
    writes its own.

    The layers run through the step's units (`passes`), which also write the
    cache: compiled, a layer is four calls into PyTorch instead of some fifty.
    On an H100 a shape's first prefill cost half what the eager one did and
    needed half the GIL hand-offs next to a busy thread; a repeated shape costs
    about the same (docs/benchmarks.md, 2026-12-07).
    """
    count, length = tokens.shape[:2]
    if not length:
        return
    h = m.embed(tokens.flatten(0, 1))
    rotation = m.rotation[:length].repeat(count, 1, 1)[:, None]
    # Where each row goes, as normal tensors like the slot state a step indexes
    # with (not inference tensors): the compiled units' guards then match both.
    with torch.inference_mode(False):
        positions = torch.arange(length, device=h.device)
        at = (slots.repeat_interleave(length), positions.repeat(count))
    for n, layer in enumerate(m.slow):
        cache = (caches.keys[n], caches.values[n])
        q, k, v = passes.slow_in(layer, h, rotation, cache, at)
        q, k, v = (x.view(count, length, *x.shape[1:]).transpose(1, 2) for x in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        h = passes.slow_out(layer, h, y.transpose(1, 2).reshape(count * length, -1))
