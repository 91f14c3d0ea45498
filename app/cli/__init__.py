"""kvctl: the command-line client of the kvstore HTTP API (talks HTTP only; no server imports)."""

from app.cli.main import main

__all__ = ["main"]
