"""Random-weight Fish Speech checkpoints in the real S1-mini format.

One builder for three users: the CI tests (`tiny`: runs the whole real code
path on a CPU in seconds), the GPU benchmarks (`s1-mini`: the real shape, about
0.7 B + 0.39 B parameters) and operators smoke-testing a GPU image without
downloading weights. Everything is written with fish-speech's own classes and
savers; nothing is downloaded.

End of speech is made unreachable (every hidden state carries a large constant
component that the end token's output embedding points away from), so each
request makes exactly `max_new_tokens` frames: lengths become checkable and
benchmark runs comparable.

    python -m bench.fish_checkpoint DIR [--size tiny|s1-mini]

`tiny` also writes `codec.yaml` (a shrunk codec); point SHOAL_FISH_CODEC_CONFIG
at it. `s1-mini` uses the package's `modded_dac_vq`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
from pathlib import Path
from typing import Any

import torch

from worker.engines.fish._compat import codec_config_path, load_fish

# Shapes: the tiny one follows what the random weights need to run (semantic
# tokens last in the vocabulary; codebooks = 1 semantic + the codec's residual
# ones; codec codebooks no larger than the model's).
TINY: dict[str, Any] = {
    "n_layer": 2,
    "n_head": 4,
    "n_local_heads": 2,
    "dim": 64,
    "head_dim": 16,
    "intermediate_size": 128,
    "n_fast_layer": 1,
    "fast_dim": 64,
    "fast_n_head": 4,
    "fast_n_local_heads": 2,
    "fast_head_dim": 16,
    "fast_intermediate_size": 128,
    "codebook_size": 64,
    "num_codebooks": 4,
    "max_seq_len": 4096,
}
S1_MINI: dict[str, Any] = {
    "n_layer": 28,
    "n_head": 16,
    "n_local_heads": 8,
    "dim": 1024,
    "head_dim": 128,
    "intermediate_size": 3072,
    "n_fast_layer": 4,
    "fast_dim": 1024,
    "fast_n_head": 16,
    "fast_head_dim": 64,
    "fast_intermediate_size": 3072,
    "codebook_size": 4096,
    "num_codebooks": 10,
    "max_seq_len": 8192,
    "vocab_size": 155_776,
}
COMMON: dict[str, Any] = {
    "model_type": "dual_ar",
    "rope_base": 1_000_000.0,
    "norm_eps": 1e-6,
    "attention_qk_norm": True,
    "tie_word_embeddings": True,
    "dropout": 0.0,
}
TINY_CODEC = """\
_target_: fish_speech.models.dac.modded_dac.DAC
sample_rate: 44100
encoder_dim: 4
encoder_rates: [2, 4, 8, 8]
decoder_dim: 32
decoder_rates: [8, 8, 4, 2]
encoder_transformer_layers: [0, 0, 0, 1]
decoder_transformer_layers: [0, 0, 0, 0]
transformer_general_config:
  _target_: fish_speech.models.dac.modded_dac.ModelArgs
  _partial_: true
  block_size: 4096
  n_local_heads: -1
  head_dim: 64
  rope_base: 10000
  norm_eps: 1.0e-5
  dropout_rate: 0.0
  attn_dropout_rate: 0.0
  channels_first: true
quantizer:
  _target_: fish_speech.models.dac.rvq.DownsampleResidualVectorQuantize
  input_dim: 64
  n_codebooks: 3
  codebook_size: 64
  codebook_dim: 8
  quantizer_dropout: 0.0
  downsample_factor: [2, 2]
  semantic_codebook_size: 64
  post_module: &transformer_module
    _target_: fish_speech.models.dac.modded_dac.WindowLimitedTransformer
    causal: true
    window_size: 128
    input_dim: 64
    config:
      _target_: fish_speech.models.dac.modded_dac.ModelArgs
      block_size: 4096
      n_layer: 1
      n_head: 4
      dim: 64
      intermediate_size: 128
      n_local_heads: -1
      head_dim: 16
      rope_base: 10000
      norm_eps: 1.0e-5
      dropout_rate: 0.0
      attn_dropout_rate: 0.0
      channels_first: true
  pre_module: *transformer_module
"""
_NEVER_END = 10.0  # size of the constant hidden component
_TINY_LOUDNESS = 0.1  # RMS of the tiny codec's output


def _calibrate(codec: Any, codebook_size: int) -> None:
    """Centre and scale the last conv so random codes decode to audible, zero-mean audio.

    A random decoder's output is a DC offset with faint ripples; tests that check
    "not silent" need real variation.
    """
    final = codec.decoder.model[-2].conv  # weight-normed Conv1d before the Tanh
    captured: list[torch.Tensor] = []
    hook = final.register_forward_hook(lambda _m, _i, out: captured.append(out))
    codes = torch.randint(0, codebook_size, (1, len(codec.quantizer.quantizer.quantizers) + 1, 64))
    with torch.no_grad():
        codec.decode(codes, torch.tensor([64]))
        hook.remove()
        mean, std = captured[0].mean(), captured[0].std()
        scale = _TINY_LOUDNESS / float(std)
        final.parametrizations.weight.original0.mul_(scale)
        final.bias.copy_((final.bias - mean) * scale)


def _ranks(count: int) -> list[bytes]:
    """`count` distinct byte strings: every single byte first, then longer ones."""
    tokens: list[bytes] = []
    for length in itertools.count(1):
        for combo in itertools.product(range(256), repeat=length):
            if len(tokens) == count:
                return tokens
            tokens.append(bytes(combo))
    raise AssertionError("unreachable")


def write_tokenizer(directory: Path, codebook_size: int, vocab_size: int | None) -> int:
    """tokenizer.tiktoken + special_tokens.json, semantic tokens last; returns the vocab size."""
    from fish_speech.tokenizer import ALL_SPECIAL_TOKENS

    controls = [t for t in ALL_SPECIAL_TOKENS if not t.startswith("<|semantic:")]
    special = [*controls, "<|speaker:0|>", *(f"<|semantic:{i}|>" for i in range(codebook_size))]
    rank_count = 256 if vocab_size is None else vocab_size - len(special)
    lines = (
        f"{base64.b64encode(token).decode()} {rank}"
        for rank, token in enumerate(_ranks(rank_count))
    )
    (directory / "tokenizer.tiktoken").write_text("\n".join(lines) + "\n")
    ids = {token: rank_count + index for index, token in enumerate(special)}
    (directory / "special_tokens.json").write_text(json.dumps(ids, indent=2))
    return rank_count + len(special)


def build(directory: Path, size: str = "tiny", seed: int = 0, device: str = "cpu") -> Path:
    """Write a checkpoint directory; returns the codec config to use with it."""
    fish = load_fish()
    from fish_speech.models.text2semantic.llama import DualARModelArgs
    from fish_speech.tokenizer import FishTokenizer
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    directory.mkdir(parents=True, exist_ok=True)
    shape = TINY if size == "tiny" else S1_MINI
    torch.manual_seed(seed)
    vocab = write_tokenizer(directory, shape["codebook_size"], shape.get("vocab_size"))
    tokenizer = FishTokenizer.from_pretrained(str(directory))
    args = DualARModelArgs(**{**COMMON, **shape, "vocab_size": vocab})
    with torch.device(device):
        model = fish.DualARTransformer(args, tokenizer=tokenizer)
    with torch.no_grad():
        if size == "tiny":
            # At upstream's init (std 0.02) the layers add next to nothing to the residual
            # stream, and the tied output just repeats the last prompt token whatever the
            # text; at unit scale the audio depends on the text, as a trained model's does.
            model.embeddings.weight.normal_(0.0, 1.0)
            for layer in model.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.normal_(0.0, layer.in_features**-0.5)
        model.embeddings.weight[:, 0] = _NEVER_END
        model.embeddings.weight[tokenizer.get_token_id(fish.IM_END_TOKEN), 0] = -_NEVER_END
    model.to(torch.bfloat16).save_pretrained(str(directory))
    del model

    if size == "tiny":
        codec_config = directory / "codec.yaml"
        codec_config.write_text(TINY_CODEC)
    else:
        codec_config = codec_config_path("modded_dac_vq")
    with torch.device(device):
        codec = instantiate(OmegaConf.load(codec_config)).eval()
    if size == "tiny":
        _calibrate(codec, shape["codebook_size"])
    torch.save(codec.state_dict(), directory / "codec.pth")
    return codec_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--size", choices=["tiny", "s1-mini"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where to initialise (cuda is faster)")
    options = parser.parse_args()
    codec = build(options.directory, options.size, options.seed, options.device)
    print(f"checkpoint: {options.directory}\ncodec config: {codec}")


if __name__ == "__main__":
    main()
