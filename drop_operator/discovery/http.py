"""HTTP plumbing shared by every source: TLS, credentials, timeouts, bounded bodies, error mapping.

One place turns aiohttp's many exception types into `SourceError` reasons, so every backend
reports a refused connection, an unknown host or a bad certificate the same way. Response bodies
are read up to a bound, so a misbehaving server cannot exhaust the operator's memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from drop_operator.discovery.errors import Reason, SourceError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TIMEOUT",
    "Credentials",
    "HttpClient",
    "HttpResponse",
    "ssl_context",
    "status_error",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_EXCERPT = 200
_HEADER_PREFIX = "headers."


@dataclass(frozen=True)
class Credentials:
    """What a source may authenticate with; built from a Secret by the caller.

    `repr` never shows secret values, so a Credentials in a log line or traceback leaks nothing.
    """

    username: str | None = None
    password: str | None = None
    token: str | None = None
    ca_pem: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.cert_pem is None) != (self.key_pem is None):
            raise SourceError(
                Reason.INVALID_CREDENTIALS, "a client certificate needs both tls.crt and tls.key"
            )
        if self.password is not None and self.username is None:
            raise SourceError(Reason.INVALID_CREDENTIALS, "password given without username")
        for name, value in self.headers.items():
            if not name or any(c in name for c in " :\r\n\t") or "\r" in value or "\n" in value:
                raise SourceError(Reason.INVALID_CREDENTIALS, f"invalid header {name!r}")

    def __repr__(self) -> str:
        present = [
            k for k in ("username", "password", "token", "ca_pem", "cert_pem", "key_pem") if getattr(self, k)
        ]
        return f"Credentials(present={present}, headers={sorted(self.headers)})"

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str | bytes]) -> Credentials:
        """Secret keys `username`, `password`, `token`, `ca.crt`, `tls.crt`, `tls.key`, `headers.<Name>`.

        Values are the decoded Secret data (bytes or text); unknown keys are ignored.
        """

        def text(key: str) -> str | None:
            value = data.get(key)
            if value is None:
                return None
            out = value.decode() if isinstance(value, bytes) else value
            return out

        headers = {
            key[len(_HEADER_PREFIX) :]: (text(key) or "").strip()
            for key in data
            if key.startswith(_HEADER_PREFIX)
        }
        token = text("token")
        return cls(
            username=text("username"),
            password=text("password"),
            token=token.strip() if token else None,
            ca_pem=text("ca.crt"),
            cert_pem=text("tls.crt"),
            key_pem=text("tls.key"),
            headers=headers,
        )

    def basic_auth(self) -> str | None:
        """The `Authorization` value for HTTP basic auth, if a username is set."""
        if self.username is None:
            return None
        return aiohttp.encode_basic_auth(self.username, self.password or "")


def ssl_context(credentials: Credentials | None) -> ssl.SSLContext:
    """System trust plus the Secret's CA (if any), and the client certificate (if any)."""
    creds = credentials or Credentials()
    try:
        ctx = ssl.create_default_context()
        if creds.ca_pem:
            ctx.load_verify_locations(cadata=creds.ca_pem)
        if creds.cert_pem and creds.key_pem:
            # ssl only loads key pairs from files: write them to a private temp dir and delete at once.
            with tempfile.TemporaryDirectory(prefix="drop-tls-") as tmp:
                cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
                for path, content in ((cert, creds.cert_pem), (key, creds.key_pem)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as fh:
                        fh.write(content)
                ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as err:
        raise SourceError(
            Reason.INVALID_CREDENTIALS, f"TLS material in the Secret is unusable: {err}"
        ) from None
    return ctx


def redact(url: URL | str) -> str:
    """A URL fit for messages: no userinfo, no query string (tokens hide there)."""
    u = URL(str(url))
    return str(u.with_user(None).with_query(None).with_fragment(None))


def excerpt(body: bytes, limit: int = _EXCERPT) -> str:
    text = body[:limit].decode("utf-8", errors="replace").strip()
    text = " ".join(text.split())
    return text + ("…" if len(body) > limit else "")


@dataclass(frozen=True)
class HttpResponse:
    """A fully read (bounded) response."""

    url: URL  # the final URL, after redirects
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    method: str = "GET"  # the final request's method: a redirect may have turned a POST into a GET

    def json(self) -> Any:
        """The body as JSON, or SourceError(InvalidResponse) with an excerpt."""
        try:
            return json.loads(self.body)
        except ValueError:
            ctype = self.headers.get("Content-Type", "?")
            raise SourceError(
                Reason.INVALID_RESPONSE,
                f"{redact(self.url)} answered HTTP {self.status} with a non-JSON body "
                f"(Content-Type {ctype}): {excerpt(self.body)!r}",
            ) from None


def status_error(resp: HttpResponse, what: str = "") -> SourceError:
    """The SourceError for a non-2xx response."""
    status = resp.status
    where = f"{what} " if what else ""
    detail = f"HTTP {status} from {where}{redact(resp.url)}"
    if resp.body:
        detail += f": {excerpt(resp.body)}"
    if status == 401:
        reason = Reason.UNAUTHORIZED
    elif status == 403:
        reason = Reason.FORBIDDEN
    elif status == 404:
        reason = Reason.NOT_FOUND
    elif status == 429:
        reason = Reason.RATE_LIMITED
        retry = resp.headers.get("Retry-After")
        if retry:
            detail += f" (Retry-After: {retry})"
    elif status >= 500:
        reason = Reason.SERVER_ERROR
    else:
        reason = Reason.HTTP_ERROR
    return SourceError(reason, detail)


class HttpClient:
    """An aiohttp session configured from Credentials, used as `async with HttpClient(...) as c`.

    Custom headers from the Secret go on every request; `Authorization` is set per request by the
    source (basic, bearer, or a registry token), because which one applies depends on the backend.
    """

    #: Test seam: a factory of the DNS resolver every new session uses (None: aiohttp's default).
    #: Tests point a public host name (e.g. Docker Hub's API host) at a local server with it.
    resolver_factory: ClassVar[Callable[[], AbstractResolver] | None] = None

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._ssl = tls if tls is not None else ssl_context(self.credentials)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        factory = type(self).resolver_factory  # through the class: a plain function stays unbound
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=self._ssl,
                limit=8,
                resolver=factory() if factory is not None else None,
            ),
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(self.timeout, 10.0)),
            headers=dict(self.credentials.headers),
            trust_env=True,  # honour HTTPS_PROXY/NO_PROXY, as clusters behind proxies need
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request and read the body up to `max_body_bytes`; map failures to SourceError.

        Redirects are followed as aiohttp does (a 301/302/303 answer to a POST becomes a GET without
        the body; `HttpResponse.method` tells).
        """
        if self._session is None:
            raise RuntimeError("HttpClient used outside `async with`")
        # A string (e.g. a Link header) is sent exactly as given: opaque pagination tokens stay intact.
        target = url if isinstance(url, URL) else URL(url, encoded=True)
        shown = redact(target)
        try:
            async with self._session.request(
                method, target, headers=headers, data=data, params=params, allow_redirects=True
            ) as resp:
                length = resp.content_length
                if length is not None and length > self.max_body_bytes:
                    raise self._too_large(shown, f"Content-Length {length}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise self._too_large(shown, "body")
                    chunks.append(chunk)
                return HttpResponse(resp.url, resp.status, resp.headers, b"".join(chunks), resp.method)
        except SourceError:
            raise
        except TimeoutError:
            raise SourceError(
                Reason.TIMEOUT, f"no complete answer from {shown} within {self.timeout:g}s"
            ) from None
        except aiohttp.ClientConnectorDNSError as err:
            raise SourceError(Reason.DNS_ERROR, f"cannot resolve {target.host}: {err.os_error}") from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as err:
            raise SourceError(
                Reason.TLS_ERROR, f"TLS handshake with {target.host} failed: {_tls_detail(err)}"
            ) from None
        except aiohttp.ClientConnectorError as err:
            raise SourceError(Reason.CONNECTION_ERROR, f"cannot connect to {shown}: {err.os_error}") from None
        except aiohttp.InvalidURL:
            raise SourceError(Reason.INVALID_CONFIG, f"invalid URL {shown}") from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as err:
            raise SourceError(Reason.CONNECTION_ERROR, f"{shown}: {type(err).__name__}: {err}") from None

    def _too_large(self, shown: str, what: str) -> SourceError:
        return SourceError(
            Reason.TOO_LARGE, f"{shown}: {what} exceeds the response bound of {self.max_body_bytes} bytes"
        )

    async def get(
        self,
        url: URL | str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        return await self.request("GET", url, headers=headers, params=params)


def _tls_detail(err: BaseException) -> str:
    cert_err = getattr(err, "certificate_error", None)
    if cert_err is not None:
        return str(getattr(cert_err, "verify_message", None) or cert_err)
    os_err = getattr(err, "os_error", None)
    return str(os_err or err)
