"""Typed discovery failures. `reason` is a short CamelCase word for a status condition.

Messages are short and true (HTTP status, a body excerpt, the server's own error text); they
never contain credentials.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DiscoveryError", "InvalidImageFilterError", "Reason", "SourceError"]


class Reason(StrEnum):
    """Why a source (or the policy's filter) failed; used verbatim as a condition reason."""

    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    TIMEOUT = "Timeout"
    TLS_ERROR = "TLSError"
    CONNECTION_ERROR = "ConnectionError"
    DNS_ERROR = "DNSError"
    RATE_LIMITED = "RateLimited"
    SERVER_ERROR = "ServerError"
    HTTP_ERROR = "HTTPError"
    INVALID_RESPONSE = "InvalidResponse"
    TOO_LARGE = "TooLarge"
    INVALID_QUERY = "InvalidQuery"
    QUERY_FAILED = "QueryFailed"
    INVALID_QUERY_RESULT = "InvalidQueryResult"
    PARTIAL_RESPONSE = "PartialResponse"
    INVALID_TEMPLATE = "InvalidTemplate"
    INVALID_TAG_FILTER = "InvalidTagFilter"
    INVALID_VERSION_PATTERN = "InvalidVersionPattern"
    INVALID_IMAGE_FILTER = "InvalidImageFilter"
    INVALID_CONFIG = "InvalidConfig"
    INVALID_CREDENTIALS = "InvalidCredentials"
    INTERNAL_ERROR = "InternalError"


class DiscoveryError(Exception):
    """Base of every discovery failure."""

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class SourceError(DiscoveryError):
    """A source could not produce candidates (unreachable, refused, invalid answer or config)."""


class InvalidImageFilterError(DiscoveryError):
    """The policy's `imageFilter` does not compile or takes too long to evaluate."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.INVALID_IMAGE_FILTER, message)
