"""A small dict-in, dict-out Kubernetes client over kubernetes-asyncio's ``ApiClient``.

Every request goes to a raw REST path, so core and custom resources share one code path and objects
stay plain JSON dicts (no generated models to convert back and forth). Of kubernetes-asyncio this
uses the configuration (auth, TLS, proxy: see :meth:`KubeClient.connect`), its auth settings and its
aiohttp session, but not ``ApiClient.call_api``, which walks every body and header again per request
before encoding with :mod:`json`; bodies are encoded and decoded with orjson instead (``docs/scale.md``,
"CPU per request"). The auth header is still the library's, asked for at each request, so tokens the
library replaces (exec plugins, ServiceAccount token files) go out as replaced.
This is also where the library's traps are defused once for everybody:

* every request carries connect and read timeouts (the library's default is to wait forever);
* patches always name their content type (a dict body would otherwise go out as JSON patch);
* watches read with an inactivity timeout and split lines themselves (no line-length limit), and an
  ``ERROR`` event becomes an :class:`ApiError` so a 410 reaches the caller instead of a silent retry.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import aiohttp.helpers
import orjson
from yarl import URL

from drop_operator.runtime import kubelib
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.metrics import REST_LATENCY, REST_REQUESTS
from drop_operator.runtime.resources import Resource

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON = "application/json"

Query = list[tuple[str, str]]


class KubeClient:
    """Async client whose objects are plain dicts; one instance is shared by the whole process."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self._api = api_client
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._fence: Callable[[], None] | None = None

    def fenced(self, fence: Callable[[], None]) -> KubeClient:
        """This client (same connection pool) with ``fence`` called before every write.

        ``fence`` raises to refuse the write before anything is sent: a leader whose Lease may have
        passed to another replica must not write (see :meth:`Manager.run`). Reads are not fenced,
        and the original client stays unfenced (the Lease itself is written through it).
        """
        clone = copy.copy(self)
        clone._fence = fence
        return clone

    def _check_fence(self) -> None:
        if self._fence is not None:
            self._fence()

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> KubeClient:
        """Connect with a kubeconfig, or with the pod's ServiceAccount when running in a cluster.

        In-cluster configuration is used only when no kubeconfig is given and
        ``KUBERNETES_SERVICE_HOST`` is set; otherwise the usual kubeconfig search applies
        (``$KUBECONFIG``, then ``~/.kube/config``).
        """
        api_client, configuration_class, kube_config = kubelib.load()
        configuration = configuration_class()
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            await kube_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        _proxy_from_env(configuration)
        api = api_client(configuration=configuration)
        api.user_agent = "drop-operator"
        # kubernetes-asyncio's session trusts the environment, so aiohttp looks up ~/.netrc and
        # the proxy variables in a worker thread on every request: two thread hand-offs per call.
        # The proxy is resolved once above instead (client-go reads no netrc).
        api.rest_client.pool_manager._trust_env = False
        return cls(api, connect_timeout=connect_timeout, read_timeout=read_timeout)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport -------------------------------------------------------------------------------

    def _timeout(self, read: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.connect_timeout,
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout if read is None else read,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = JSON,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response once its headers arrived (body unread).

        What ``ApiClient.call_api`` would send: the client's default headers (User-Agent), the auth
        the configuration gives now, the query urlencoded, and the same proxy and TLS server name;
        ``body`` goes out as JSON (UTF-8, by orjson) for every content type used here.
        """
        api = self._api
        rest = api.rest_client
        headers = {"Content-Type": content_type, "Accept": JSON, **api.default_headers}
        params = list(query or ())
        started = time.monotonic()
        try:
            # Runs the configuration's refresh hook (token file) and reads the key as the library's
            # refresh loop (exec plugins) last left it.
            await api.update_params_for_auth(headers, params, ["BearerToken"])
            url = self.host + path
            if params:
                url += "?" + urlencode(params)
            resp: aiohttp.ClientResponse = await rest.pool_manager.request(
                method,
                url,
                headers=headers,
                data=None if body is None else _encode(body, content_type),
                timeout=client_timeout or self._timeout(),
                proxy=rest.proxy or None,
                proxy_headers=rest.proxy_headers or None,
                server_hostname=rest.server_hostname or None,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            REST_REQUESTS.labels(code="<error>", method=method).inc()
            reason = "Timeout" if isinstance(exc, TimeoutError) else "ConnectionError"
            raise ApiError(0, reason, f"{method} {path}: {exc!r}") from exc
        REST_REQUESTS.labels(code=str(resp.status), method=method).inc()
        REST_LATENCY.labels(verb=method).observe(time.monotonic() - started)
        return resp

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> Any:
        """One request to a raw API path; returns the decoded JSON body or raises :class:`ApiError`.

        Every method but GET is a write and passes the fence first (:meth:`fenced`).
        """
        if method != "GET":
            self._check_fence()
        resp = await self._send(method, path, query=query, body=body, content_type=content_type)
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiError(0, "ConnectionError", f"{method} {path}: reading body: {exc!r}") from exc
        finally:
            resp.release()
        try:
            data: Any = orjson.loads(raw) if raw else None
        except ValueError:
            data = raw.decode("utf-8", "replace")
        if not 200 <= resp.status < 300:
            raise ApiError.from_status(resp.status, data)
        return data

    # -- verbs -----------------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = await self.request("GET", res.path(namespace=namespace, name=name))
        return obj

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[dict[str, Any]], str]:
        """All matching objects (following ``continue`` pages) and the list's resourceVersion.

        Items get ``apiVersion`` and ``kind`` filled in (the server omits them in lists) so that
        consumers can treat listed and watched objects alike. If a continue token expires mid-way the
        list restarts once without paging, as client-go's pager does.
        """
        base = _selectors(label_selector, field_selector)
        items: list[dict[str, Any]] = []
        token = ""
        limit = page_size
        while True:
            query = [*base]
            if limit:
                query.append(("limit", str(limit)))
            if token:
                query.append(("continue", token))
            try:
                page = await self.request("GET", res.path(namespace=namespace), query=query)
            except ApiError as exc:
                if exc.gone and token:
                    items, token, limit = [], "", 0
                    continue
                raise
            for item in page.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def watch(
        self,
        res: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int,
        allow_bookmarks: bool = True,
        inactivity_timeout: float = 80.0,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream raw ``{"type", "object"}`` events (``ADDED``/``MODIFIED``/``DELETED``/``BOOKMARK``).

        The server ends the stream after ``timeout_seconds``; the generator then simply finishes.
        No bytes for ``inactivity_timeout`` seconds raise ``ApiError(0, "Timeout")``; an ``ERROR``
        event raises the ``ApiError`` it carries (``.gone`` for an expired resourceVersion).
        Close the generator (``contextlib.aclosing``) to drop the connection early.
        """
        return self._watch(
            res,
            resource_version=resource_version,
            namespace=namespace,
            query=[
                *_selectors(label_selector, field_selector),
                ("watch", "true"),
                ("resourceVersion", resource_version),
                ("timeoutSeconds", str(int(timeout_seconds))),
                *([("allowWatchBookmarks", "true")] if allow_bookmarks else []),
            ],
            inactivity_timeout=inactivity_timeout,
        )

    async def _watch(
        self,
        res: Resource,
        *,
        resource_version: str,
        namespace: str | None,
        query: Query,
        inactivity_timeout: float,
    ) -> AsyncGenerator[dict[str, Any], None]:
        path = res.path(namespace=namespace)
        resp = await self._send(
            "GET", path, query=query, client_timeout=self._timeout(read=inactivity_timeout)
        )
        try:
            if resp.status != 200:
                raw = await resp.read()
                try:
                    body: Any = orjson.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                raise ApiError.from_status(resp.status, body)
            buffer = b""
            try:
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while (newline := buffer.find(b"\n")) >= 0:
                        line, buffer = buffer[:newline], buffer[newline + 1 :]
                        if line.strip():
                            yield _decode_event(res, line)
            except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
                raise ApiError(0, "Timeout", f"watch {path}: no data for {inactivity_timeout:g}s") from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise ApiError(0, "ConnectionError", f"watch {path}: {exc!r}") from exc
            if buffer.strip():
                yield _decode_event(res, buffer)
        finally:
            resp.close()

    async def create(
        self, res: Resource, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        ns = namespace or (body.get("metadata") or {}).get("namespace")
        obj: dict[str, Any] = await self.request("POST", res.path(namespace=ns), body=body)
        return obj

    async def replace(
        self, res: Resource, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """PUT the whole object; ``metadata.resourceVersion`` in the body makes it a compare-and-swap."""
        meta = body.get("metadata") or {}
        ns = namespace or meta.get("namespace")
        obj: dict[str, Any] = await self.request("PUT", res.path(namespace=ns, name=meta["name"]), body=body)
        return obj

    async def patch(
        self, res: Resource, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): ``None`` values delete keys, lists are replaced whole."""
        obj: dict[str, Any] = await self.request(
            "PATCH", res.path(namespace=namespace, name=name), body=patch, content_type=MERGE_PATCH
        )
        return obj

    async def patch_status(
        self, res: Resource, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Merge patch of the ``/status`` subresource (spec changes in the patch are ignored)."""
        obj: dict[str, Any] = await self.request(
            "PATCH",
            res.path(namespace=namespace, name=name, subresource="status"),
            body=patch,
            content_type=MERGE_PATCH,
        )
        return obj

    async def apply(
        self,
        res: Resource,
        body: dict[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        status: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply of ``body`` (which must carry apiVersion, kind and metadata.name).

        JSON is valid YAML, so the body goes out as JSON under the apply-patch content type.
        """
        meta = body.get("metadata") or {}
        query: Query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        sub = "status" if status else ""
        path = res.path(namespace=meta.get("namespace"), name=meta["name"], subresource=sub)
        obj: dict[str, Any] = await self.request(
            "PATCH", path, query=query, body=body, content_type=APPLY_PATCH
        )
        return obj

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        uid: str | None = None,
    ) -> bool:
        """Delete; ``False`` if the object was already gone. ``uid`` guards against deleting a successor."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", res.path(namespace=namespace, name=name), body=options)
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def delete_collection(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> None:
        """Delete every object the selectors match, in one request (``deletecollection``)."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        query = _selectors(label_selector, field_selector)
        await self.request("DELETE", res.path(namespace=namespace), query=query, body=options)

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Iterable[str] | None = None,
        expiration_seconds: int = 3600,
    ) -> str:
        """A short-lived ServiceAccount token from the TokenRequest API."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        result = await self.request("POST", path, body=body)
        return str(result["status"]["token"])


def _proxy_from_env(configuration: Any) -> None:
    """``HTTPS_PROXY``/``NO_PROXY`` for the API server's URL, once, unless the kubeconfig names one."""
    if configuration.proxy:
        return
    try:
        proxy, auth = aiohttp.helpers.get_env_proxy_for_url(URL(str(configuration.host)))
    except LookupError:
        return
    configuration.proxy = str(proxy)
    if auth is not None:
        configuration.proxy_headers = {"Proxy-Authorization": auth.encode()}


def _encode(body: Any, content_type: str = JSON) -> bytes:
    """``body`` as JSON, like ``json.dumps`` would (non-string keys become strings) but UTF-8, not ASCII.

    An apply patch is read as YAML, which takes JSON but not every character JSON leaves raw: YAML 1.1
    folds NEL, LS and PS (U+0085, U+2028, U+2029) in a double-quoted string as line breaks and
    refuses DEL, the C1 controls and the non-characters U+FFFE/U+FFFF (its printable set). Those go
    out as ``\\uXXXX`` escapes, which YAML reads back as the same character; everything else stays raw,
    since YAML's ``\\u`` takes no surrogate pairs for characters beyond U+FFFF.
    """
    raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    if content_type != APPLY_PATCH:
        return raw
    text = raw.decode()
    if _YAML_UNSAFE.search(text) is None:
        return raw
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


# Outside YAML's printable set, or a line break to YAML 1.1 (go-yaml, which the API server uses).
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _selectors(label_selector: str | None, field_selector: str | None) -> Query:
    query: Query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _decode_event(res: Resource, line: bytes) -> dict[str, Any]:
    try:
        event: dict[str, Any] = orjson.loads(line)
    except ValueError as exc:
        raise ApiError(0, "BadWatchEvent", f"undecodable watch line: {line[:200]!r}") from exc
    if event.get("type") == "ERROR":
        raise ApiError.from_status(int((event.get("object") or {}).get("code") or 500), event.get("object"))
    obj = event.get("object")
    if isinstance(obj, dict) and event.get("type") != "BOOKMARK":
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
    return event
