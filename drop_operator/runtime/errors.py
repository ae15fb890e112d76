"""The one exception type callers of the client need to handle."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed API call.

    ``status`` is the HTTP status code, or ``0`` when no response arrived at all (connection refused,
    timeout, TLS failure), so a single ``except ApiError`` covers both and retry decisions can look at
    ``status`` alone.
    """

    def __init__(self, status: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}

    @classmethod
    def from_status(cls, status: int, body: Any) -> ApiError:
        """Build from a ``Status`` object body (or whatever the server sent instead)."""
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls(
                int(body.get("code") or status),
                str(body.get("reason") or ""),
                str(body.get("message") or ""),
                body.get("details") or {},
            )
        text = body if isinstance(body, str) else repr(body)
        return cls(status, "", text[:500])

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        """The resourceVersion asked for is older than what the server keeps (410): re-list."""
        return self.status == 410 or self.reason in ("Expired", "Gone")
