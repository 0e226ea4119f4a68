# syntax=docker/dockerfile:1
# The gateway: FastAPI under uvicorn. It never synthesizes, so it needs no
# engine and no GPU. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t ghcr.io/shoal-tts/shoal-gateway:0.1.0 .

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
# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 shoal \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent shoal
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHOAL_LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# /healthz only says the process serves; /readyz (Redis and S3) is for the
# orchestrator's readiness, not a reason to restart the container.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# Exec form: uvicorn is PID 1 and gets SIGTERM itself (graceful shutdown).
CMD ["uvicorn", "api.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log", \
     "--timeout-graceful-shutdown", "20"]
