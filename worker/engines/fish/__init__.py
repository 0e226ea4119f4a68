"""The Fish Speech engine (OpenAudio S1-mini), with continuous batching.

One module per role, after compact inference engines such as nano-vllm:

- `model`: the checkpoint, checked and loaded (language model and codec);
- `prompt`: a chunk's prompt and sampling knobs (long text is cut by
  `worker.engines.text_chunks`, which espeak shares);
- `sequence`: one chunk being generated, and the events its job hears;
- `scheduler`: which sequences hold the batch's slots (no tensors);
- `step` and `sampling`: the batched forward passes and per-row sampling;
- `runner`: the KV cache, the slot state and the captured steps;
- `codec`: codes to audio in windows, batched across jobs, on its own stream;
- `loop`: the thread that ties them, step after step;
- `engine`: the `Engine` the worker calls, one job per thread;
- `reference_codes`: cloned voices' codes; `_compat`: fish-speech's packaging defects.
"""

from worker.engines.fish.engine import BatchOptions, FishSpeechEngine, default_batch

__all__ = ["BatchOptions", "FishSpeechEngine", "default_batch"]
