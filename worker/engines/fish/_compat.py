"""fish-speech 0.1.0 as a library: the one place that works around its packaging.

The PyPI wheel is an application more than a library. What goes wrong when it is
imported naively, and what shoal does about each defect:

1. No `fish_speech/__init__.py` (a namespace package): imports work, but the
   package has no `__file__`; its configs are found through `__path__`.
2. `fish_speech.models.dac.inference` calls `pyrootutils.setup_root` at import,
   which raises without a `.project-root` file, and its `load_model` only finds
   configs inside the package. It is never imported: `codec_config_path` takes a
   config name of the package or any YAML path, and the codec is instantiated
   from it with OmegaConf/Hydra (model.py).
3. `fish_speech/utils/__init__.py` imports lightning (training code), and
   `fish_speech.inference_engine` imports `fish_speech.utils`: neither is
   imported, so lightning is not needed.
4. torchaudio: `ReferenceLoader` calls `torchaudio.list_audio_backends()`, gone
   since torchaudio 2.9, and not every torch has a torchaudio (torch 2.13 has
   none on PyPI). descript-audiotools imports torchaudio at import time although
   the codec's encode/decode never call it. When torchaudio cannot be imported, a
   placeholder stands in whose every use raises with the reason. Reference audio
   is decoded with soundfile and resampled with soxr instead.
5. `ReferenceLoader` reads `./references/<id>` relative to the working directory
   (creating it, so an unknown id silently means "no cloning") and keeps GPU
   tensors in unbounded dicts: not used; see reference_codes.py.
6. `generate()` re-allocates the KV caches on every request (the GPU memory
   growth fixed upstream in PR #1073), cannot be interrupted and decodes one
   request at a time: not used; shoal's runner batches the model's own layers
   over caches allocated once (step.py).
7. loguru logs every step at INFO to stderr: only its warnings are kept.
8. Importing its inference module switches on Inductor's coordinate-descent
   tuning for the whole process, which re-benchmarks every kernel in every
   process (minutes on a cold start, tens of seconds on a warm cache): that
   module is never imported, and the switch is put back off should anything
   else have imported it.

9. Its model module imports transformers' AutoTokenizer and never uses it;
   importing transformers takes seconds of a worker's start. A placeholder
   stands in for transformers during that import only (when nothing imported
   the real one before), and is gone afterwards.

Nothing here downloads anything; weights come from the checkpoint directory.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SUPPORTED_VERSION = "0.1.0"
INSTALL_HINT = (
    "install the Fish Speech extra: pip install '.[fish]' && "
    f"pip install --no-deps fish-speech=={SUPPORTED_VERSION} "
    "descript-audio-codec==1.0.0 descript-audiotools==0.7.2 (or: make install-fish)"
)


class FishUnavailable(RuntimeError):
    """fish-speech or one of its dependencies is missing or of the wrong version."""


class _MissingTorchaudio(types.ModuleType):
    """Stands in for torchaudio when it cannot be imported; any use says why."""

    def __init__(self, reason: str) -> None:
        super().__init__("torchaudio")
        self.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        self._reason = reason

    def __getattr__(self, name: str) -> Any:
        # AttributeError keeps hasattr() and inspect working on the placeholder.
        raise AttributeError(
            f"torchaudio.{name} is unavailable ({self._reason}); shoal's Fish Speech path "
            "does not use torchaudio"
        )


def _ensure_torchaudio() -> None:
    if "torchaudio" in sys.modules:
        return
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError) as exc:  # absent, or built for another torch
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio"] = _MissingTorchaudio(f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _without_transformers() -> Iterator[None]:
    if "transformers" in sys.modules:
        yield
        return
    placeholder = types.ModuleType("transformers")
    placeholder.AutoTokenizer = None  # type: ignore[attr-defined]
    sys.modules["transformers"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("transformers") is placeholder:
            del sys.modules["transformers"]


def _quiet_loguru() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def no_kernel_tuning() -> None:
    """Inductor without coordinate-descent tuning: fish-speech switches it on at import."""
    import torch._inductor.config as inductor

    inductor.coordinate_descent_tuning = False
    inductor.triton.unique_kernel_names = False


@dataclass(frozen=True)
class Fish:
    """The parts of fish-speech shoal uses (the package is untyped)."""

    DualARTransformer: Any
    ContentSequence: Any
    TextPart: Any
    VQPart: Any
    IM_END_TOKEN: str
    configs_dir: Path


@cache
def load_fish() -> Fish:
    """Import fish-speech once, with the workarounds above; FishUnavailable if it can't."""
    try:
        version = importlib.metadata.version("fish-speech")
    except importlib.metadata.PackageNotFoundError as exc:
        raise FishUnavailable(f"fish-speech is not installed: {INSTALL_HINT}") from exc
    if version != SUPPORTED_VERSION:
        raise FishUnavailable(
            f"fish-speech {version} is installed; shoal supports {SUPPORTED_VERSION}: "
            + INSTALL_HINT
        )
    _ensure_torchaudio()
    try:
        with _without_transformers():
            llama = importlib.import_module("fish_speech.models.text2semantic.llama")
        content = importlib.import_module("fish_speech.content_sequence")
        tokenizer = importlib.import_module("fish_speech.tokenizer")
        importlib.import_module("fish_speech.models.dac.modded_dac")  # Hydra targets it
    except ImportError as exc:
        raise FishUnavailable(f"fish-speech cannot be imported ({exc}): {INSTALL_HINT}") from exc
    _quiet_loguru()
    no_kernel_tuning()
    package = importlib.import_module("fish_speech")
    return Fish(
        DualARTransformer=llama.DualARTransformer,
        ContentSequence=content.ContentSequence,
        TextPart=content.TextPart,
        VQPart=content.VQPart,
        IM_END_TOKEN=tokenizer.IM_END_TOKEN,
        configs_dir=Path(next(iter(package.__path__))) / "configs",
    )


def codec_config_path(config: str) -> Path:
    """A codec config name of the package (`modded_dac_vq`) or a path to a YAML file."""
    if config.endswith((".yaml", ".yml")) or "/" in config:
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"codec config {config!r} (SHOAL_FISH_CODEC_CONFIG) is not a file")
        return path
    path = load_fish().configs_dir / f"{config}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in load_fish().configs_dir.glob("*.yaml"))
        raise ValueError(
            f"codec config {config!r} (SHOAL_FISH_CODEC_CONFIG) is not one of the package's "
            f"configs {known}; give a YAML path instead"
        )
    return path
