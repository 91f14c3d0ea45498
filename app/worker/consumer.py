"""``python -m app.worker.consumer [huey_consumer options]``: the worker, sized by the settings.

Runs ``huey_consumer app.worker.huey -w HUEY_WORKERS -k HUEY_WORKER_TYPE`` plus any options given
(they win over the settings), e.g. ``-n`` on every consumer but the one that runs periodic tasks.
With ``-k process`` it points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory (and starts itself
again, so prometheus_client is imported with it set): the metrics port then reports what the
worker processes did.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Sequence

from huey.consumer_options import ConsumerConfig, OptionParserHandler

from app.config import get_settings
from app.worker.registry import huey

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def consumer_arguments(workers: int, worker_type: str, extra: Sequence[str]) -> list[str]:
    """huey_consumer's command line: the settings first, so options given on ours override them."""
    return ["-w", str(workers), "-k", worker_type, *extra, "app.worker.huey"]


def worker_type_of(arguments: Sequence[str]) -> str | None:
    """The last ``-k``/``--worker-type`` in ``arguments``, None without one."""
    found = None
    for index, argument in enumerate(arguments):
        if argument in ("-k", "--worker-type") and index + 1 < len(arguments):
            found = arguments[index + 1]
        elif argument.startswith("--worker-type="):
            found = argument.split("=", 1)[1]
        elif argument.startswith("-k") and len(argument) > 2:
            found = argument[2:]
    return found


def main(argv: Sequence[str] | None = None) -> None:
    settings = get_settings()
    extra = list(sys.argv[1:] if argv is None else argv)
    arguments = consumer_arguments(settings.huey_workers, settings.huey_worker_type, extra)
    if worker_type_of(arguments) == "process" and not os.environ.get(MULTIPROC_ENV):
        # prometheus_client picks its storage when first imported, and `python -m app.worker.consumer`
        # has imported the tasks package (and so prometheus_client) already: start again with it set.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="kvstore-worker-metrics-")
        os.execv(sys.executable, [sys.executable, "-m", "app.worker.consumer", *extra])  # noqa: S606 - our own argv

    # huey_consumer's main(), with our arguments and without its log handler (ours is JSON).
    options, _ = OptionParserHandler().get_option_parser().parse_args(arguments)
    config = ConsumerConfig(**{k: v for k, v in options.__dict__.items() if v is not None})
    config.validate()
    if config.verbose is not None:  # -v / -q given: they win over LOG_LEVEL for Huey's own lines
        logging.getLogger("huey").setLevel(config.loglevel)
    huey.create_consumer(**config.values).run()


if __name__ == "__main__":
    main()
