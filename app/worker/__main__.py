"""``python -m app.worker``: the same as ``python -m app.worker.consumer``."""

from app.worker.consumer import main

main()
