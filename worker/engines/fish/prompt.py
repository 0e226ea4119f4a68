"""A chunk's prompt: Fish's interleaved references and text, checked against the context.

Each slot of the batch holds `context` positions (SHOAL_FISH_CONTEXT, at most
the model's max_seq_len); a prompt may take all but a reserve kept for
generation, as upstream's rule (max_seq_len - 2048) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worker.engines.fish.model import FishModel

GENERATION_RESERVE = 2048


class PromptTooLong(ValueError):
    pass


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8  # 0: greedy (tests only: jobs take 0.1-1.0)
    top_p: float = 0.8
    repetition_penalty: float = 1.1
    max_new_tokens: int = 1024  # 0: until end of speech or the context is full


Reference = tuple[str, torch.Tensor]  # transcript, codes (codebooks x frames)


def prompt_limit(context: int) -> int:
    """The longest prompt a slot of `context` positions takes."""
    return context - min(GENERATION_RESERVE, context // 2)


def build_prompt(
    fm: FishModel, text: str, references: Sequence[Reference], context: int
) -> torch.Tensor:
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
    limit = prompt_limit(context)
    if prompt.shape[1] > limit:
        raise PromptTooLong(f"the prompt has {prompt.shape[1]} tokens; the model takes {limit}")
    return prompt


def max_steps(sampling: Sampling, prompt_length: int, context: int) -> int:
    """Columns a chunk may generate: max_new_tokens, within the slot's context."""
    room = context - prompt_length
    return min(sampling.max_new_tokens, room) if sampling.max_new_tokens else room
