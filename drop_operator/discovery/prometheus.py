"""Prometheus-compatible source (Prometheus, Mimir, Thanos, VictoriaMetrics).

Contract (from the product docs): the query returns series with an `image` label; the value is
the score. Decisions, each visible in the source status:

- The endpoint's base path is kept: `https://mimir.example.com/prometheus` queries
  `https://mimir.example.com/prometheus/api/v1/query`. A query string on the endpoint is kept too.
- `instant` queries use `/api/v1/query`; `range` queries use `/api/v1/query_range` over the last
  `lookback` seconds at `step`, and an image's score is the **maximum** of its finite values over
  the range — the peak demand is what warming nodes is for. (Averages or other aggregations are
  better written in PromQL, e.g. `avg_over_time(...)` in an instant query.)
- Series without an `image` label (or with an empty one) are counted as dropped
  (`MissingImageLabel`); NaN and ±Inf values are not scores (`NonFiniteValue`); unparsable values
  are `InvalidValue`.
- Several series with the same `image` (e.g. `by (image, cluster)`) are **summed**: two clusters
  running an image is more demand than one.
- `status: error` answers become `InvalidQuery` (errorType `bad_data`), `Timeout` (`timeout`) or
  `QueryFailed` (anything else) with the server's own error text; a result that is not a vector
  (instant) or matrix (range) is `InvalidQueryResult`.
- "No series" is an empty, healthy answer in every encoding compatible servers use: `"result": []`
  (Prometheus), `"result": null` (Prometheus 2.0, Thanos, Google's managed Prometheus frontend),
  no `result` at all, and `"resultType": ""` with a null result (Cortex's query-frontend). A
  declared type other than the expected one stays `InvalidQueryResult`, empty or not.
- A partial answer is not the whole truth. The request asks every server that can return one to
  refuse instead (`partial_response=false` for Thanos, `deny_partial_response=1` for
  VictoriaMetrics cluster; others ignore both), and an answer still marked `"isPartial": true`
  (VictoriaMetrics, when a storage node is down) fails the source with `PartialResponse`, so the
  source's last complete list stays in use rather than losing the images the missing node held.

The request is a form POST, which keeps long queries out of URLs and access logs. Query proxies
that only allow GET answer `405`; then the same parameters are sent by GET (the query string),
and the method that worked is remembered per query URL for the life of the process
(`MethodMemory`), so later syncs go straight to GET. A redirect that turns the POST into a GET
without its body (301/302/303) is followed by posting again to where it led, on the same host
only (credentials never follow a redirect to another host; an `https` endpoint is never
downgraded), and that URL is remembered too.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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
from drop_operator.discovery.source import Candidate, Source, SourceResult

__all__ = ["MethodMemory", "PrometheusConfig", "PrometheusSource", "parse_query_response"]

QueryType = Literal["instant", "range"]

DROP_MISSING_IMAGE = "MissingImageLabel"
DROP_NON_FINITE = "NonFiniteValue"
DROP_INVALID_VALUE = "InvalidValue"
_MAX_POINTS = 11_000  # Prometheus' own limit on points per series in a range query
#: Ask servers that can answer partially to fail instead (Thanos; VictoriaMetrics cluster).
STRICT_PARAMETERS = {"partial_response": "false", "deny_partial_response": "1"}


@dataclass(frozen=True)
class PrometheusConfig:
    """A Prometheus source as the policy spells it; durations in seconds."""

    endpoint: str
    query: str
    query_type: QueryType = "instant"
    lookback: float = 3600.0
    step: float = 300.0
    timeout: float = DEFAULT_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def _endpoint_url(endpoint: str) -> URL:
    url = URL(endpoint)
    if url.scheme not in ("http", "https") or not url.host:
        raise SourceError(Reason.INVALID_CONFIG, f"endpoint {endpoint!r} must be an http(s) URL with a host")
    return url


def _api_url(base: URL, api: str) -> URL:
    """Append the API path to the endpoint's own path (Mimir's `/prometheus` stays)."""
    return base.with_path(base.path.rstrip("/") + api, keep_query=True)


def _score(raw: Any) -> float | None:
    """A sample `[ts, "value"]` → float; None if unparsable."""
    try:
        return float(raw[1])
    except (TypeError, ValueError, IndexError):
        return None


def parse_query_response(data: Any, query_type: QueryType) -> SourceResult:
    """Turn a decoded `/api/v1/query[_range]` answer into a SourceResult (pure; see module doc)."""
    if not isinstance(data, dict):
        raise SourceError(Reason.INVALID_RESPONSE, "answer is not a JSON object")
    status = data.get("status")
    if status == "error":
        raise _query_error(data)
    if status != "success":
        raise SourceError(Reason.INVALID_RESPONSE, f"answer has status {status!r}, expected 'success'")
    payload = data.get("data")
    if not isinstance(payload, dict):
        raise SourceError(Reason.INVALID_RESPONSE, "answer has no 'data' object")
    expected = "vector" if query_type == "instant" else "matrix"
    result_type = payload.get("resultType")
    series = payload.get("result")
    if series is None:  # "no series", as several compatible servers spell it
        series = []
    if result_type != expected and not (not series and result_type in (None, "")):
        raise SourceError(
            Reason.INVALID_QUERY_RESULT,
            f"{query_type} query returned a {result_type}, expected a {expected} of series with an "
            "'image' label, e.g. count(...) by (image)",
        )
    if not isinstance(series, list):
        raise SourceError(Reason.INVALID_RESPONSE, "answer's 'result' is not a list")
    if data.get("isPartial") is True:
        raise SourceError(
            Reason.PARTIAL_RESPONSE,
            f"the server marked its answer partial (isPartial: true; a storage node did not answer): "
            f"its {len(series)} series were not used, the last complete answer is kept",
        )

    scores: dict[str, float] = {}
    dropped: Counter[str] = Counter()
    for item in series:
        labels = item.get("metric", {}) if isinstance(item, dict) else None
        if labels is None:  # an empty label set, spelled null
            labels = {}
        if not isinstance(labels, dict):
            raise SourceError(Reason.INVALID_RESPONSE, "a series in the answer has no 'metric' object")
        image = labels.get("image")
        if not isinstance(image, str) or not image:
            dropped[DROP_MISSING_IMAGE] += 1
            continue
        if query_type == "instant":
            samples = [item.get("value")]
        else:
            values = item.get("values")
            samples = values if isinstance(values, list) else []
        parsed = [_score(s) for s in samples]
        if not parsed or any(v is None for v in parsed):
            dropped[DROP_INVALID_VALUE] += 1
            continue
        finite = [v for v in parsed if v is not None and math.isfinite(v)]
        if not finite:
            dropped[DROP_NON_FINITE] += 1
            continue
        scores[image] = scores.get(image, 0.0) + max(finite)
    warnings = [str(w) for w in data.get("warnings") or [] if w]
    return SourceResult(
        candidates=[Candidate(image, score) for image, score in scores.items()],
        dropped=dropped,
        scanned=len(series),
        warnings=warnings,
    )


def _query_error(data: dict[str, Any]) -> SourceError:
    error_type = str(data.get("errorType") or "unknown")
    text = str(data.get("error") or "")[:300]
    if error_type == "bad_data":
        reason = Reason.INVALID_QUERY
    elif error_type == "timeout":
        reason = Reason.TIMEOUT
    else:
        reason = Reason.QUERY_FAILED
    return SourceError(reason, f"query failed ({error_type}): {text}")


class MethodMemory:
    """How each query URL last answered: the method (POST or GET) and the URL (after a redirect).

    Bounded (least recently used entries go first). A process keeps one (`DEFAULT_MEMORY`), shared
    by every Prometheus source, because it describes the server behind a URL, not a policy.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, tuple[str, URL]] = OrderedDict()

    def get(self, url: URL) -> tuple[str, URL]:
        """The method and target to use for `url`; POST to `url` itself when nothing is known."""
        entry = self._entries.get(str(url))
        if entry is None:
            return "POST", url
        self._entries.move_to_end(str(url))
        return entry

    def remember(self, url: URL, method: str, target: URL) -> None:
        key = str(url)
        if (method, target) == ("POST", url):
            self._entries.pop(key, None)
            return
        self._entries[key] = (method, target)
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


DEFAULT_MEMORY = MethodMemory()


def _allows(resp: HttpResponse, method: str) -> bool:
    """Whether a 405 answer leaves `method` open: its `Allow` header lists it, or there is none."""
    allow = resp.headers.get("Allow")
    if allow is None:
        return True
    return method in {m.strip().upper() for m in allow.split(",")}


def _same_host(origin: URL, target: URL) -> bool:
    """Whether credentials for `origin` may go to `target`: same host, and never https → http."""
    return origin.host == target.host and not (origin.scheme == "https" and target.scheme != "https")


class PrometheusSource(Source):
    """Runs one PromQL query; see the module docstring for the scoring rules."""

    kind: ClassVar[str] = "prometheus"

    def __init__(
        self,
        config: PrometheusConfig,
        credentials: Credentials | None = None,
        *,
        memory: MethodMemory | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials or Credentials()
        self.memory = memory if memory is not None else DEFAULT_MEMORY
        self._tls = ssl_context(self.credentials)  # unusable TLS material fails here, before any request
        self._base = _endpoint_url(config.endpoint)
        if not config.query.strip():
            raise SourceError(Reason.INVALID_CONFIG, "query is empty")
        if config.query_type not in ("instant", "range"):
            raise SourceError(
                Reason.INVALID_CONFIG, f"queryType {config.query_type!r} is not instant or range"
            )
        if config.query_type == "range":
            if config.step <= 0 or config.lookback <= 0:
                raise SourceError(Reason.INVALID_CONFIG, "lookback and step must be positive")
            if config.lookback / config.step > _MAX_POINTS:
                raise SourceError(
                    Reason.INVALID_CONFIG,
                    f"lookback/step gives more than {_MAX_POINTS} points per series; raise step",
                )

    def _authorization(self) -> dict[str, str]:
        if self.credentials.token:
            return {"Authorization": f"Bearer {self.credentials.token}"}
        basic = self.credentials.basic_auth()
        return {"Authorization": basic} if basic else {}

    async def discover(self) -> SourceResult:
        form: dict[str, str]
        if self.config.query_type == "instant":
            url = _api_url(self._base, "/api/v1/query")
            form = {"query": self.config.query}
        else:
            url = _api_url(self._base, "/api/v1/query_range")
            end = time.time()
            form = {
                "query": self.config.query,
                "start": f"{end - self.config.lookback:.3f}",
                "end": f"{end:.3f}",
                "step": f"{self.config.step:g}",
            }
        form["timeout"] = f"{max(1.0, self.config.timeout - 1):g}s"
        form.update(STRICT_PARAMETERS)
        async with HttpClient(
            self.credentials,
            timeout=self.config.timeout,
            max_body_bytes=self.config.max_body_bytes,
            tls=self._tls,
        ) as client:
            resp = await self._query(client, url, form)
        return self._result(resp)

    async def _send(self, client: HttpClient, method: str, target: URL, form: dict[str, str]) -> HttpResponse:
        if method == "GET":
            return await client.request("GET", target, headers=self._authorization(), params=form)
        return await client.request("POST", target, headers=self._authorization(), data=form)

    async def _query(self, client: HttpClient, url: URL, form: dict[str, str]) -> HttpResponse:
        """Send the query the way this URL last accepted it; adapt to 405 and body-dropping redirects."""
        method, target = self.memory.get(url)
        resp = await self._send(client, method, target, form)
        if resp.status == 405:
            other = "GET" if method == "POST" else "POST"
            if _allows(resp, other):
                method = other
                resp = await self._send(client, method, target, form)
        elif method == "POST" and resp.method != "POST":
            # A 301/302/303 turned the POST into a GET without the query: post again where it led.
            if not _same_host(target, resp.url):
                raise SourceError(
                    Reason.INVALID_CONFIG,
                    f"{redact(target)} redirects to {redact(resp.url)} on another host, which loses the "
                    "query and may not get the credentials; set endpoint to where the query API is",
                )
            target = resp.url
            resp = await self._send(client, method, target, form)
        if resp.status != 405:
            self.memory.remember(url, method, target)
        return resp

    def _result(self, resp: HttpResponse) -> SourceResult:
        if resp.status != 200:
            # Prometheus explains query errors (400/422/503) in JSON; use its words when present.
            try:
                data = resp.json()
            except SourceError:
                data = None
            if isinstance(data, dict) and data.get("status") == "error" and resp.status not in (401, 403):
                raise _query_error(data)
            raise status_error(resp, "Prometheus")
        data = resp.json()
        try:
            return parse_query_response(data, self.config.query_type)
        except SourceError as err:
            if err.reason is Reason.INVALID_RESPONSE:
                raise SourceError(err.reason, f"{redact(resp.url)}: {err.message}") from None
            raise
