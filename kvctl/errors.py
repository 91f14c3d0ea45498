"""Errors kvctl reports as one line and an exit code (never a traceback)."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1  # the API refused the request, or bad local input
EXIT_CONNECTION = 2  # the server could not be reached (argparse also uses 2 for usage errors)
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure with a message for the user and the process exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.message}


class ConnectionFailed(CliError):
    exit_code = EXIT_CONNECTION


class ApiError(CliError):
    """An HTTP error answer; ``problem`` is its application/problem+json body (or a stand-in)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or f"http_{status}")
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        super().__init__(f"{self.detail} ({self.code}, HTTP {status})")

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.detail, "code": self.code, "status": self.status, "problem": self.problem}
