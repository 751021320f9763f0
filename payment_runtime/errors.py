"""The error every layer raises toward the client: HTTP status plus a stable code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal the API turns into ``{"error": {"code", "message", ...}}``."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        """The JSON response body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}
