"""Semantic codes for one prompt: fish-speech's decode step, driven by our loop.

Upstream's `generate()` re-allocates the KV caches on every request (the GPU
memory growth fixed upstream in PR #1073) and cannot be interrupted. This loop
reuses the caches allocated once at load (stale entries past the current
position are masked out), polls `should_stop` between tokens, and seeds the
sampler, so the same seed on the same device gives the same codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from worker.engines.fish_model import FishModel

# Fish's context rule: a prompt leaves this many positions for generation.
GENERATION_RESERVE = 2048
_REPETITION_WINDOW = 16  # upstream's window for the repetition penalty


class PromptTooLong(ValueError):
    pass


class Stopped(Exception):
    """`should_stop` turned True: the job was canceled, timed out or lost."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.8
    repetition_penalty: float = 1.1
    max_new_tokens: int = 1024  # 0: until end of speech or the context is full


Reference = tuple[str, torch.Tensor]  # transcript, codes (codebooks x frames)


def build_prompt(fm: FishModel, text: str, references: Sequence[Reference]) -> torch.Tensor:
    """Fish's interleaved prompt: each reference's text and codes, then the text to speak."""
    fish = fm.fish
    sequence = fish.ContentSequence(modality="interleave")
    for transcript, codes in references:
        sequence.append(
            [fish.TextPart(text=transcript), fish.VQPart(codes=codes)], add_end=True, speaker=0
        )
    sequence.append([fish.TextPart(text=text)], add_end=False, speaker=0)
    values, _, _ = sequence.encode_for_inference(
        fm.model.tokenizer, num_codebooks=fm.model.config.num_codebooks
    )
    prompt: torch.Tensor = values
    limit = fm.max_seq_len - GENERATION_RESERVE
    if prompt.shape[1] > limit:
        raise PromptTooLong(f"the prompt has {prompt.shape[1]} tokens; the model takes {limit}")
    return prompt


@torch.inference_mode()
def generate(
    fm: FishModel,
    prompt: torch.Tensor,
    sampling: Sampling,
    seed: int,
    should_stop: Callable[[], bool],
) -> torch.Tensor:
    """Codes (codebooks x frames, on the CPU) that continue the prompt until end of speech."""
    model, device = fm.model, fm.device
    rows, length = prompt.shape  # rows = 1 token row + the codebooks
    room = fm.max_seq_len - length
    steps = min(sampling.max_new_tokens, room) if sampling.max_new_tokens else room
    im_end = model.tokenizer.get_token_id(fm.fish.IM_END_TOKEN)
    knobs = {
        name: torch.tensor(value, device=device, dtype=torch.float)
        for name, value in (
            ("temperature", sampling.temperature),
            ("top_p", sampling.top_p),
            ("repetition_penalty", sampling.repetition_penalty),
        )
    }
    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
    # Full-length like upstream's: the repetition window then has the same strides on
    # every request, so the compiled step is never re-specialised for a new length.
    tokens = torch.zeros((rows, fm.max_seq_len), dtype=torch.int, device=device)
    # Prefill (eager, as upstream): the whole prompt in one pass, then one token.
    token = fm.fish.decode_one_token_ar(
        model,
        prompt.to(device).view(1, rows, -1),
        torch.arange(0, length, device=device),
        knobs["temperature"],
        knobs["top_p"],
        knobs["repetition_penalty"],
        None,
        None,
    )
    tokens[:, 0] = token.view(-1)
    position = torch.tensor([length], device=device, dtype=torch.int)
    count, ended = 1, bool(token[0, 0] == im_end)
    with sdpa_kernel(SDPBackend.MATH):  # upstream: better for Inductor's codegen
        while not ended and count < steps:
            if should_stop():
                raise Stopped
            start = max(0, count - _REPETITION_WINDOW)
            token = fm.decode_step(
                model=model,
                x=token.view(1, rows, -1),
                input_pos=position,
                previous_tokens=tokens[:, start : start + _REPETITION_WINDOW],
                audio_masks=None,
                audio_parts=None,
                **knobs,
            ).clone()  # a CUDA graph's output is overwritten by its next replay
            position += 1
            tokens[:, count] = token.view(-1)
            count += 1
            ended = bool(token[0, 0] == im_end)
    frames = count - 1 if ended else count  # the end-of-speech step carries no audio
    return tokens[1:, :frames].cpu()
