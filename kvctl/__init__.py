"""kvctl: the command-line client of the kvstore HTTP API (talks HTTP only; no server imports)."""

from kvctl.main import main

__all__ = ["main"]
