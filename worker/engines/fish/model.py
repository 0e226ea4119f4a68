"""Loading a Fish Speech (S1-mini) checkpoint: checked, once, ready to generate.

The directory holds `config.json` (model_type dual_ar), `model.pth`,
`tokenizer.tiktoken` (+ `special_tokens.json`) and `codec.pth`. Upstream loads
both state dicts with strict=False, so a wrong or truncated file silently
leaves random weights; here a missing weight or a shape mismatch stops the
worker with a message that names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from shoal.logs import get_logger
from worker.engines.fish._compat import Fish, codec_config_path, load_fish

log = get_logger(__name__)

REQUIRED_FILES = ("config.json", "model.pth", "tokenizer.tiktoken", "codec.pth")
_PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Bumped whenever reference encoding changes, so persisted codes are not reused.
_REFERENCE_FORMAT = "v1"


class CheckpointError(ValueError):
    """The checkpoint directory is missing, incomplete or does not match its config."""


@dataclass(frozen=True)
class FishOptions:
    checkpoint: Path | None
    codec_config: str = "modded_dac_vq"
    device: Literal["auto", "cuda", "cpu"] = "auto"
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    compile: bool = False
    compile_cache_dir: Path | None = None


def use_compile_cache(directory: Path) -> None:
    """Point Inductor's and Triton's caches at a directory shared by workers (a volume)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(directory / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(directory / "triton")
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")


def check_checkpoint(path: Path | None) -> dict[str, Any]:
    """The checkpoint's config; CheckpointError naming what is wrong."""
    if path is None:
        raise CheckpointError(
            "SHOAL_FISH_CHECKPOINT is not set: point it at an S1-mini checkpoint directory"
        )
    if not path.is_dir():
        raise CheckpointError(f"Fish Speech checkpoint {path} is not a directory")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"Fish Speech checkpoint {path} lacks {', '.join(missing)} "
            f"(expected {', '.join(REQUIRED_FILES)})"
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("model_type") != "dual_ar":
        raise CheckpointError(
            f"{path / 'config.json'} is not an S1-mini config (model_type must be 'dual_ar')"
        )
    return config


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt file
        raise CheckpointError(f"{path} cannot be read as a PyTorch state dict: {exc}") from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path} holds no state dict")
    # Upstream's training checkpoints prefix keys; their loaders strip the same.
    if any(k.startswith("generator.") for k in state):
        state = {k[10:]: v for k, v in state.items() if k.startswith("generator.")}
    if next(iter(state)).startswith("model."):
        state = {k.removeprefix("model."): v for k, v in state.items()}
    return dict(state)


def _load_weights(module: torch.nn.Module, path: Path, drop: str | None = None) -> None:
    state = {k: v for k, v in _state_dict(path).items() if drop is None or drop not in k}
    try:
        result = module.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # size mismatches
        raise CheckpointError(f"{path} does not match its config: {exc}") from exc
    params = {name for name, _ in module.named_parameters()}
    missing = [k for k in result.missing_keys if k in params]
    if missing:
        raise CheckpointError(
            f"{path} lacks {len(missing)} weight(s) the config needs, e.g. {missing[:3]}"
        )
    if result.unexpected_keys:
        log.warning(
            "checkpoint has unused weights", file=str(path), count=len(result.unexpected_keys)
        )


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("SHOAL_FISH_DEVICE=cuda but PyTorch sees no CUDA device")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def _codec_fingerprint(config_path: Path, codec_path: Path) -> str:
    """Identifies the codec, so reference codes persisted by one worker fit another."""
    digest = hashlib.sha256(_REFERENCE_FORMAT.encode())
    digest.update(config_path.read_bytes())
    size = codec_path.stat().st_size
    digest.update(str(size).encode())
    with codec_path.open("rb") as file:  # head and tail: cheap, and weights differ there
        digest.update(file.read(1 << 20))
        file.seek(max(0, size - (1 << 20)))
        digest.update(file.read(1 << 20))
    return digest.hexdigest()[:16]


@dataclass
class FishModel:
    """The language model and the codec, loaded; the runner and codec own their caches."""

    fish: Fish
    model: Any  # fish_speech DualARTransformer
    codec: Any  # fish_speech DAC
    device: torch.device
    precision: torch.dtype
    compile: bool  # torch.compile the batched step and the codec (CUDA only)
    codec_fingerprint: str

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @property
    def max_seq_len(self) -> int:
        return int(self.model.config.max_seq_len)

    @classmethod
    def load(cls, options: FishOptions) -> FishModel:
        check_checkpoint(options.checkpoint)
        assert options.checkpoint is not None
        checkpoint = options.checkpoint
        if options.compile_cache_dir is not None:
            use_compile_cache(options.compile_cache_dir)
        fish = load_fish()
        device = _device(options.device)
        precision = _PRECISIONS[options.precision]
        started = time.perf_counter()
        try:
            # Built on the device: its random initialisation, soon overwritten, takes
            # seconds on a CPU and milliseconds on a GPU.
            with torch.device(device):
                model = fish.DualARTransformer.from_pretrained(str(checkpoint), load_weights=False)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise CheckpointError(f"{checkpoint} cannot be loaded: {exc}") from exc
        _load_weights(model, checkpoint / "model.pth", drop="audio_")  # as upstream: unused
        model = model.to(device=device, dtype=precision).eval()
        model_seconds = time.perf_counter() - started
        codec_config = codec_config_path(options.codec_config)
        codec = _build_codec(codec_config, checkpoint / "codec.pth", device)
        compiled = options.compile and device.type == "cuda"
        if options.compile and not compiled:
            log.warning("SHOAL_FISH_COMPILE applies to CUDA only; running eager on the CPU")
        log.info(
            "fish speech loaded",
            device=str(device),
            precision=options.precision,
            compiled=compiled,
            seconds=round(time.perf_counter() - started, 2),
            model_seconds=round(model_seconds, 2),
        )
        return cls(
            fish, model, codec, device, precision, compiled,
            _codec_fingerprint(codec_config, checkpoint / "codec.pth"),
        )  # fmt: skip


def _build_codec(config_path: Path, weights: Path, device: torch.device) -> Any:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    try:
        with torch.device(device):  # as the model: initialised where it runs
            codec = instantiate(OmegaConf.load(config_path))
    except Exception as exc:  # Hydra wraps errors in its own types
        raise CheckpointError(f"codec config {config_path} cannot be instantiated: {exc}") from exc
    _load_weights(codec, weights)
    return codec.to(device).eval()
