# syntax=docker/dockerfile:1
# GPU synthesis worker: Fish Speech on CUDA, one worker process per GPU.
# The weights are NOT in the image: mount them (a volume or PVC) at
# SHOAL_FISH_CHECKPOINT; docs/deploy.md says how to fill that volume.
# Build from the repository root:
#   docker build -f docker/worker-gpu.Dockerfile -t ghcr.io/shoal-tts/shoal-worker-gpu:0.1.0 .

# The CUDA runtime of the torch build below (cu128). For another CUDA, change
# this tag and TORCH_INDEX_URL together.
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04 AS base
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

FROM base AS build
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md requirements-fish-nodeps.txt ./
# torch at the version the `fish` extra pins, as the CUDA build from PyTorch's
# index (cu128: NVIDIA driver >= 570); the extra below then keeps this build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "${TORCH_INDEX_URL}" "$(python3 -c 'import re, tomllib; \
      fish = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["fish"]; \
      print(next(d for d in fish if re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0] == "torch"))')"
COPY shoal ./shoal
COPY api ./api
COPY worker ./worker
# The `fish` extra holds what Fish Speech's inference really imports; the
# fish-speech wheel and the codec packages go in without their own pins,
# which do not fit (and are training-only).
RUN pip install ".[fish]" \
 && pip install --no-deps -r requirements-fish-nodeps.txt

FROM base
RUN groupadd --system --gid 10001 shoal \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent shoal \
 && mkdir -p /var/cache/shoal /models \
 && chown 10001:10001 /var/cache/shoal
COPY --from=build /opt/venv /opt/venv
# HOME on /tmp (an emptyDir in Kubernetes): libraries that cache under ~ can
# write with a read-only root filesystem. torch.compile's caches go to
# /var/cache/shoal (SHOAL_FISH_COMPILE_CACHE_DIR), a volume shared by the
# workers so warm starts skip compiling.
# HF_HUB_OFFLINE: the weights come from the mounted volume, never from a hub.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    SHOAL_FISH_COMPILE_CACHE_DIR=/var/cache/shoal \
    SHOAL_LOG_FORMAT=json \
    SHOAL_ENGINE=fish-speech \
    SHOAL_FISH_CHECKPOINT=/models/openaudio-s1-mini
WORKDIR /app
USER 10001:10001
# Loading the model (and compiling on a cold cache) takes minutes; the
# heartbeat file is touched only once the engine is loaded.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15m --retries=3 \
  CMD ["python", "-m", "worker.probe"]
# Exec form: the Celery worker is PID 1, so SIGTERM reaches it and means a
# warm shutdown (the running job finishes before the process exits).
CMD ["python", "-m", "worker", "--queues", "tts"]
