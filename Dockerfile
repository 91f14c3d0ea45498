# syntax=docker/dockerfile:1
# The API image: gunicorn with uvicorn workers, configured by gunicorn.conf.py.
#   docker build -t kvstore:1.0.0 .
#   docker run -e SECRET_KEY=... -e REDIS_URL=... -e HUEY_REDIS_URL=... -p 8000:8000 kvstore:1.0.0

# --- build: a virtualenv with the pinned runtime dependencies -------------------------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# Wheels only: a dependency that would need a compiler fails the build instead of pulling one in.
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt
COPY app /app/app
COPY gunicorn.conf.py /app/gunicorn.conf.py
# Byte-code compiled now: the root filesystem is read-only at run time.
RUN python -m compileall -q /app

# --- runtime: the virtualenv and the code, no pip cache, no build tools, not root ------------
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="kvstore-api" \
      org.opencontainers.image.description="kvstore HTTP API (gunicorn + uvicorn workers)"
RUN groupadd --system --gid 10001 kvstore \
    && useradd --system --uid 10001 --gid kvstore --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kvstore
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc
USER 10001:10001
EXPOSE 8000
# Liveness only: readiness (the data Redis answers) is for the load balancer, not for restarts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/api/v1/health/live\", timeout=4)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app.main:app"]
