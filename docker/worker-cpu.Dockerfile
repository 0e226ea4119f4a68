# syntax=docker/dockerfile:1
# CPU worker: the espeak engine (espeak-ng ships inside the espeakng-loader
# wheel) and webhook delivery. No CUDA, no weights. Build from the repository root:
#   docker build -f docker/worker-cpu.Dockerfile -t ghcr.io/shoal-tts/shoal-worker-cpu:0.1.0 .

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shoal ./shoal
COPY api ./api
COPY worker ./worker
RUN pip install .

FROM python:3.11.13-slim-bookworm
RUN groupadd --system --gid 10001 shoal \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent shoal
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHOAL_LOG_FORMAT=json \
    SHOAL_ENGINE=espeak
WORKDIR /app
USER 10001:10001
# Fresh while the worker's heartbeat runs (python -m worker.probe); never
# `celery inspect`, which stalls under load.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-m", "worker.probe"]
# Exec form: the Celery worker is PID 1, so SIGTERM reaches it and means a
# warm shutdown (the running job finishes). `--queues webhooks` for webhook workers.
CMD ["python", "-m", "worker", "--queues", "tts"]
