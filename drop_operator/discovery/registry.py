"""OCI registry source: list a repository's tags, keep the newest, turn them into image references.

Protocol, as real registries behave:

- `GET /v2/<repository>/tags/list?n=<pageSize>`, then the `Link: <…>; rel="next"` URL exactly as
  given (relative or absolute; opaque tokens are not rebuilt). Servers that ignore `n` and send
  everything are fine; at most `maxScan` tags per repository are read (a warning says when the
  bound was hit). A `Link` to another host is refused, so credentials never follow it.
- Authentication follows the server's `WWW-Authenticate` challenge: `Bearer` runs the token flow
  (anonymously, or with the Secret's username/password as basic credentials to the token realm —
  public registries answer 401 even for public images); `Basic` sends the Secret's credentials.
  A `token` in the Secret is sent as a static bearer token. Tokens are cached per realm, service,
  scope and identity until shortly before they expire, in a `TokenCache` that callers may share
  across syncs. Challenges are parsed quote-aware (scopes contain commas).
- Tags that name a signature, attestation, SBOM or referrers index rather than a runnable image
  (`sha256-<hex>.sig`, `.att`, `.sbom`, `sha256-<hex>`: `imageref.is_artifact_tag`) are dropped
  first, whatever `tagFilter` and `topX` say, and counted as `ArtifactTag`.
- `tagFilter` (searched, bounded by a timeout) selects tags; the remaining tags are ordered newest
  first (see `versions`); the first `topX` per repository are kept.

Scoring: with `topX` set, the newest kept tag of every repository scores `topX`, the next
`topX - 1`, and so on (without `topX`, the newest scores the number of kept tags). The newest tag
of each repository thus ranks the same, older tags less, and a policy's `weight` scales the whole
source against others (e.g. against Prometheus counts).

The image is `imageTemplate` rendered with `Registry`, `Repository` and `Tag`, or
`<Registry>/<Repository>:<Tag>` without a template. `Registry` is the name the registry's images
carry, which is not always the host its API answers on: `https://registry-1.docker.io` (and Docker
Hub's other API hosts) gives `docker.io`, as pods and runtimes name those images. The other way
round, a `url` of `https://docker.io` lists tags at `registry-1.docker.io`, as containerd does. The
alias table is `imageref`'s.

Repositories fail one by one. A repository that answers 404 (or 401/403, a server error, an
unusable tag list) is recorded in `SourceResult.failed_parts` and the other repositories' images
are still returned; the caller keeps that repository's last good images. Only when every
repository fails, or on an error that concerns the registry as a whole (DNS, TLS, connection,
timeout, rate limit, configuration), does the source fail as a whole, keeping everything it last
returned.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from yarl import URL

from drop_operator.discovery.errors import Reason, SourceError
from drop_operator.discovery.http import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT,
    Credentials,
    HttpClient,
    HttpResponse,
    redact,
    ssl_context,
    status_error,
)
from drop_operator.discovery.patterns import BoundedPattern
from drop_operator.discovery.source import Candidate, Source, SourceResult
from drop_operator.discovery.template import ImageTemplate
from drop_operator.discovery.versions import sort_newest_first
from drop_operator.imageref import is_artifact_tag, is_valid_path, registry_api_host, registry_name

__all__ = [
    "PER_REPOSITORY_REASONS",
    "Challenge",
    "RegistryConfig",
    "RegistrySource",
    "TokenCache",
    "parse_challenges",
    "parse_next_link",
]

DROP_FILTERED = "FilteredOut"
DROP_INVALID_TAG = "InvalidTag"
DROP_ARTIFACT_TAG = "ArtifactTag"
#: Failures that concern one repository; any other failure concerns the registry as a whole (the
#: next repository would fail the same way), so it stops the source at once.
PER_REPOSITORY_REASONS = frozenset(
    {
        Reason.NOT_FOUND,
        Reason.UNAUTHORIZED,
        Reason.FORBIDDEN,
        Reason.SERVER_ERROR,
        Reason.HTTP_ERROR,
        Reason.INVALID_RESPONSE,
        Reason.TOO_LARGE,
    }
)
DEFAULT_MAX_SCAN = 10_000
DEFAULT_PAGE_SIZE = 1000
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;"]+))""", re.I)


# --- WWW-Authenticate ------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: lowercase scheme and its parameters (names lowercased)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="…",service="…",scope="repository:a:pull,push"` (RFC 7235, quote-aware)."""
    out: list[Challenge] = []
    i, n = 0, len(header)

    def skip(chars: str = " \t,") -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    while i < n:
        skip()
        m = _TOKEN_CHARS.match(header, i)
        if not m:
            break
        scheme, i = m.group(0).lower(), m.end()
        params: dict[str, str] = {}
        while True:
            skip(" \t")
            start = i
            m = _TOKEN_CHARS.match(header, i)
            if not m:
                break
            j = m.end()
            while j < n and header[j] in " \t":
                j += 1
            if j >= n or header[j] != "=":
                i = start  # a bare token: the next challenge's scheme (or a token68)
                break
            name, i = m.group(0).lower(), j + 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                value: list[str] = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1  # closing quote
                params[name] = "".join(value)
            else:
                m = re.compile(r"[^,\s]*").match(header, i)
                assert m is not None
                params[name], i = m.group(0), m.end()
            skip(" \t")
            if i < n and header[i] == ",":
                i += 1
        out.append(Challenge(scheme, params))
        if i < n and not _TOKEN_CHARS.match(header, i):
            i += 1
    return out


def parse_next_link(header: str | None) -> str | None:
    """The target of the `rel="next"` link in a `Link` header, exactly as given."""
    if not header:
        return None
    for m in _LINK.finditer(header):
        for rel in _REL.finditer(m.group(2)):
            if "next" in (rel.group(1) or rel.group(2) or "").lower().split():
                return m.group(1).strip()
    return None


# --- tokens ----------------------------------------------------------------------------------


class TokenCache:
    """Bearer tokens by (realm, service, scope, identity) until `margin` before they expire.

    `identity` is a hash of the credentials, so two policies with different Secrets never share
    a token. It also remembers each registry's last challenge, so a later sync sends a cached
    token on its first request. Share one cache across syncs (and sources) to avoid asking the
    token server every time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, margin: float = 10.0) -> None:
        self._clock = clock
        self._margin = margin
        self._tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}
        self.challenges: dict[str, Challenge] = {}  # last challenge per registry origin

    def get(self, key: tuple[str, str, str, str]) -> str | None:
        entry = self._tokens.get(key)
        if entry is None:
            return None
        token, expires = entry
        if self._clock() >= expires:
            del self._tokens[key]
            return None
        return token

    def put(self, key: tuple[str, str, str, str], token: str, expires_in: float) -> None:
        lifetime = max(0.0, expires_in - min(self._margin, expires_in / 2))
        self._tokens[key] = (token, self._clock() + lifetime)

    def __len__(self) -> int:
        return len(self._tokens)


# --- the source ------------------------------------------------------------------------------


def _every_repository_failed(failures: dict[str, SourceError]) -> SourceError:
    """One error for a source none of whose repositories answered (a single one: its own error)."""
    errors = list(failures.values())
    if len(errors) == 1:
        return errors[0]
    reasons = {e.reason for e in errors}
    reason = reasons.pop() if len(reasons) == 1 else errors[0].reason
    detail = "; ".join(f"{repo}: {err.reason}: {err.message}" for repo, err in failures.items())
    return SourceError(reason, f"all {len(errors)} repositories failed: {detail}")


@dataclass(frozen=True)
class RegistryConfig:
    """A registry source as the policy spells it."""

    url: str
    repositories: Sequence[str]
    tag_filter: str | None = None
    top_x: int | None = None
    version_pattern: str | None = None
    image_template: str | None = None
    max_scan: int = DEFAULT_MAX_SCAN
    page_size: int = DEFAULT_PAGE_SIZE
    timeout: float = DEFAULT_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class RegistrySource(Source):
    """Tags of one or more repositories on one registry; see the module docstring."""

    kind: ClassVar[str] = "registry"

    def __init__(
        self,
        config: RegistryConfig,
        credentials: Credentials | None = None,
        *,
        token_cache: TokenCache | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials or Credentials()
        self._tls = ssl_context(self.credentials)  # unusable TLS material fails here, before any request
        self.token_cache = token_cache if token_cache is not None else TokenCache()
        url = URL(config.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise SourceError(Reason.INVALID_CONFIG, f"url {config.url!r} must be an http(s) URL with a host")
        host = url.host_port_subcomponent or url.host
        #: What images from this registry are named with (`Registry` of the template).
        self.registry_name = registry_name(host)
        #: Where requests go: the url, or the API host of a registry named by its image name.
        self._base = url.with_host(registry_api_host(host)) if url.explicit_port is None else url
        self.api_host = self._base.host_port_subcomponent or host
        if not config.repositories:
            raise SourceError(Reason.INVALID_CONFIG, "no repositories given")
        for repo in config.repositories:
            if not is_valid_path(repo):
                raise SourceError(
                    Reason.INVALID_CONFIG, f"repository {repo!r} is not a valid repository path"
                )
        if config.top_x is not None and config.top_x < 1:
            raise SourceError(Reason.INVALID_CONFIG, "topX must be at least 1")
        if config.max_scan < 1 or config.page_size < 1:
            raise SourceError(Reason.INVALID_CONFIG, "maxScan and pageSize must be at least 1")
        self._tag_filter = (
            BoundedPattern(
                config.tag_filter,
                what="tagFilter",
                error_factory=lambda m: SourceError(Reason.INVALID_TAG_FILTER, m),
            )
            if config.tag_filter
            else None
        )
        self._version_pattern = (
            BoundedPattern(
                config.version_pattern,
                what="versionPattern",
                error_factory=lambda m: SourceError(Reason.INVALID_VERSION_PATTERN, m),
            )
            if config.version_pattern
            else None
        )
        self._template = ImageTemplate(config.image_template) if config.image_template else None
        self._origin = f"{self._base.scheme}://{self.api_host}"
        self._last_from_cache = False
        self._identity = hashlib.sha256(
            f"{self.credentials.username}\0{self.credentials.password}".encode()
        ).hexdigest()[:16]

    # -- public ---------------------------------------------------------------------------

    async def discover(self) -> SourceResult:
        result = SourceResult()
        for pattern in (self._tag_filter, self._version_pattern):
            if pattern is not None:
                pattern.start_budget()
        async with HttpClient(
            self.credentials,
            timeout=self.config.timeout,
            max_body_bytes=self.config.max_body_bytes,
            tls=self._tls,
        ) as client:
            repositories = list(dict.fromkeys(self.config.repositories))
            result.parts = len(repositories)
            for repo in repositories:
                try:
                    tags, truncated = await self.list_tags(client, repo)
                except SourceError as err:
                    if err.reason not in PER_REPOSITORY_REASONS:
                        raise
                    result.failed_parts[repo] = err
                    continue
                result.scanned += len(tags)
                if truncated:
                    result.warnings.append(f"{repo}: stopped after maxScan={self.config.max_scan} tags")
                for candidate in self._candidates(repo, tags, result.dropped):
                    result.candidates.append(candidate)
                    result.part_of.setdefault(candidate.image, repo)
        if len(result.failed_parts) == len(repositories):
            raise _every_repository_failed(result.failed_parts)
        return result

    async def list_tags(self, client: HttpClient, repository: str) -> tuple[list[str], bool]:
        """All tags of `repository` (at most maxScan) in listing order, and whether the bound was hit."""
        url = str(
            self._base.with_path(
                f"{self._base.path.rstrip('/')}/v2/{repository}/tags/list", keep_query=False
            ).with_query({"n": str(min(self.config.page_size, self.config.max_scan))})
        )
        tags: list[str] = []
        seen: set[str] = set()
        while True:
            seen.add(url)
            resp = await self._get(client, url, repository)
            page = self._tags_of(resp)
            room = self.config.max_scan - len(tags)
            tags.extend(page[:room])
            if len(page) >= room and (len(page) > room or parse_next_link(resp.headers.get("Link"))):
                return tags, True
            link = parse_next_link(resp.headers.get("Link"))
            if not link:
                return tags, False
            nxt = urllib.parse.urljoin(str(resp.url), link)
            target = URL(nxt, encoded=True)
            if (target.scheme, target.host, target.port) != (
                self._base.scheme,
                self._base.host,
                self._base.port,
            ):
                raise SourceError(
                    Reason.INVALID_RESPONSE,
                    f"pagination link of {repository} points to another host: {redact(target)}",
                )
            if nxt in seen or not page:
                raise SourceError(
                    Reason.INVALID_RESPONSE, f"pagination of {repository} does not advance ({redact(target)})"
                )
            url = nxt

    # -- internals ------------------------------------------------------------------------

    def _tags_of(self, resp: HttpResponse) -> list[str]:
        data = resp.json()
        if not isinstance(data, dict) or not isinstance(data.get("tags", []), list | None):
            raise SourceError(Reason.INVALID_RESPONSE, f"{redact(resp.url)}: not a tag list")
        tags = data.get("tags") or []
        if not all(isinstance(t, str) for t in tags):
            raise SourceError(Reason.INVALID_RESPONSE, f"{redact(resp.url)}: tag list contains non-strings")
        return tags

    def _candidates(self, repo: str, tags: list[str], dropped: Counter[str]) -> list[Candidate]:
        valid = [t for t in tags if _TAG_RE.fullmatch(t)]
        if len(valid) != len(tags):
            dropped[DROP_INVALID_TAG] += len(tags) - len(valid)
        runnable = [t for t in valid if not is_artifact_tag(t)]
        if len(runnable) != len(valid):
            dropped[DROP_ARTIFACT_TAG] += len(valid) - len(runnable)
            valid = runnable
        if self._tag_filter is not None:
            kept = [t for t in valid if self._tag_filter.search(t)]
            dropped[DROP_FILTERED] += len(valid) - len(kept)
            valid = kept
        ordered = sort_newest_first(valid, self._version_pattern)
        if self.config.top_x is not None:
            ordered = ordered[: self.config.top_x]
        top = self.config.top_x or len(ordered)
        out: list[Candidate] = []
        for rank, tag in enumerate(ordered):
            variables = {"Registry": self.registry_name, "Repository": repo, "Tag": tag}
            image = (
                self._template.render(variables) if self._template else f"{self.registry_name}/{repo}:{tag}"
            )
            out.append(Candidate(image, float(top - rank)))
        return out

    async def read(
        self, client: HttpClient, repository: str, path: str, *, method: str = "GET", accept: str = ""
    ) -> HttpResponse:
        """``method`` of ``/v2/<repository>/<path>`` (e.g. ``manifests/<tag>``) with the token flow.

        ``accept`` is sent as the ``Accept`` header (the manifest media types a caller understands).
        Any answer other than 200 raises :class:`SourceError` (``NotFound``, ``Unauthorized``...).
        """
        url = str(
            self._base.with_path(f"{self._base.path.rstrip('/')}/v2/{repository}/{path}", keep_query=False)
        )
        return await self._get(
            client, url, repository, method=method, extra={"Accept": accept} if accept else {}
        )

    async def _get(
        self,
        client: HttpClient,
        url: str,
        repository: str,
        *,
        method: str = "GET",
        extra: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        async def send(auth: dict[str, str]) -> HttpResponse:
            return await client.request(method, url, headers={**(extra or {}), **auth})

        resp = await send(await self._authorization(client, repository))
        if resp.status == 401 and not self.credentials.token:
            challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
            usable = [c for c in challenges if c.scheme in ("bearer", "basic")]
            if not usable:
                raise status_error(resp, "registry (no usable WWW-Authenticate challenge)")
            self.token_cache.challenges[self._origin] = usable[0]
            scope = usable[0].params.get("scope")
            resp = await send(await self._authorization(client, repository, scope=scope))
            if resp.status == 401 and self._last_from_cache:
                # A cached token the registry no longer accepts: ask for a fresh one once.
                resp = await send(await self._authorization(client, repository, scope=scope, refresh=True))
        if resp.status != 200:
            raise status_error(resp, "registry")
        return resp

    async def _authorization(
        self, client: HttpClient, repository: str, *, scope: str | None = None, refresh: bool = False
    ) -> dict[str, str]:
        if self.credentials.token:
            return {"Authorization": f"Bearer {self.credentials.token}"}
        self._last_from_cache = False
        challenge = self.token_cache.challenges.get(self._origin)
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            basic = self.credentials.basic_auth()
            if basic is None:
                raise SourceError(
                    Reason.UNAUTHORIZED,
                    "the registry requires basic auth; the Secret has no username/password",
                )
            return {"Authorization": basic}
        realm = challenge.params.get("realm", "")
        realm_url = URL(realm)
        if realm_url.scheme not in ("http", "https") or not realm_url.host:
            raise SourceError(Reason.INVALID_RESPONSE, f"Bearer challenge has an unusable realm {realm!r}")
        service = challenge.params.get("service", "")
        scope = scope or f"repository:{repository}:pull"
        key = (realm, service, scope, self._identity)
        token = None if refresh else self.token_cache.get(key)
        self._last_from_cache = token is not None
        if token is None:
            token, expires_in = await self._fetch_token(client, realm_url, service, scope)
            self.token_cache.put(key, token, expires_in)
        return {"Authorization": f"Bearer {token}"}

    async def _fetch_token(
        self, client: HttpClient, realm: URL, service: str, scope: str
    ) -> tuple[str, float]:
        params = {"scope": scope}
        if service:
            params["service"] = service
        basic = self.credentials.basic_auth()
        resp = await client.get(realm, headers={"Authorization": basic} if basic else None, params=params)
        if resp.status != 200:
            err = status_error(resp, "token server")
            if resp.status == 401:
                raise SourceError(
                    Reason.UNAUTHORIZED, f"the token server rejected the credentials: {err.message}"
                )
            raise err
        data = resp.json()
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(Reason.INVALID_RESPONSE, f"{redact(resp.url)}: token response has no token")
        expires_in = data.get("expires_in", 60)
        return token, float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
