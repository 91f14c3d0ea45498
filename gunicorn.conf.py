"""gunicorn settings of the API: `gunicorn -c gunicorn.conf.py app.main:app` (the Dockerfile's CMD).

Environment: PORT (8000), BIND_HOST (0.0.0.0), WEB_CONCURRENCY (workers, 2), GRACEFUL_TIMEOUT (30 s to
finish in-flight requests on SIGTERM), WORKER_TIMEOUT (60 s without a heartbeat restarts a worker),
KEEPALIVE (75 s, above the 60 s idle timeout of common load balancers), PROMETHEUS_MULTIPROC_DIR
(<tmp>/kvstore-prometheus). Every other setting comes from app.config.Settings; uvicorn believes the
X-Forwarded-* headers of the same proxies as the app does (TRUSTED_PROXIES).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from app.config import get_settings
from app.platform.logging import gunicorn_logconfig

# Set before any worker imports prometheus_client: it picks multiprocess mode at import time.
MULTIPROC_DIR = Path(
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / "kvstore-prometheus"))
)

bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 (a container)
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "60"))
keepalive = int(os.environ.get("KEEPALIVE", "75"))
# The app finds the client's address itself (app/platform/http/client_ip.py); uvicorn gets the same
# list, so X-Forwarded-Proto is believed from the same peers and never from others.
forwarded_allow_ips = get_settings().trusted_proxies
# uvicorn's own variable, if set (kubernetes/configmap.yaml sets both), must say the same: one list.
if os.environ.get("FORWARDED_ALLOW_IPS", forwarded_allow_ips) != forwarded_allow_ips:
    raise SystemExit(
        f"FORWARDED_ALLOW_IPS={os.environ['FORWARDED_ALLOW_IPS']!r} differs from TRUSTED_PROXIES="
        f"{forwarded_allow_ips!r}: set them to the same proxies (the ingress controller's pods)"
    )
# The heartbeat file on tmpfs: a read-only root filesystem and slow disks do not stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (tmpfs, not a shared file name)
accesslog = None  # the app logs one access line per request
control_socket_disable = True  # no runtime-control socket in $HOME (read-only root filesystem, parallel test runs)
logconfig_dict = gunicorn_logconfig(get_settings())  # also refuses a bad SECRET_KEY before any worker starts


def on_starting(server: Any) -> None:
    """Wipe the metric files of a previous run: stale files would add old counts to every scrape."""
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
    for stale in MULTIPROC_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live-only gauges (open watch streams) of a worker that exited; its counters stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    """Move everything loaded at start-up out of the garbage collector's sight, and collect the
    young generation less often: fewer, shorter GC pauses in the request path (p99 latency)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
