"""Real OCI registries (distribution 2.8 from Debian, distribution v3 from `task tools`) for the
tests, the e2e suite and the demo.

Auth modes are the registry's own: none, htpasswd basic auth, or token auth. For token auth the
token server lives here (aiohttp on 127.0.0.1, in its own thread so it answers whatever the test's
event loop is doing, or as its own process for the demo, which outlives the command that starts it). It signs RS256 JWTs carrying the claims the registry checks (`iss`, `aud`,
`sub`, `exp`, `nbf`, `iat`, `jti`, `access`) with an `x5c` header holding a self-signed certificate
that is also the registry's `rootcertbundle` — the same flow public registries use.

Images (built by :mod:`devtools.ociimage`) are pushed through the distribution API (upload a blob,
PUT it with its digest, PUT an OCI manifest or index per tag) so the registry stores exactly what a
real push would, and a real node can pull and run them. `seed_tags` adds many
tags fast by writing the tag links the registry itself writes on a manifest PUT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Literal

import bcrypt
import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from devtools.http import wait_http
from devtools.ociimage import Image, Index, build_image, layer
from devtools.process import Process, free_port
from devtools.tls import CertAuthority, KeyPair, self_signed_rsa
from devtools.tools import go_tool, system_tool

__all__ = ["RegistryServer", "TokenServer", "start_registry"]

AuthMode = Literal["none", "basic", "token"]
SERVICE = "drop-test-registry"
ISSUER = "drop-test-token-issuer"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _basic(username: str, password: str) -> str:
    return "Basic " + _b64(f"{username}:{password}".encode())


@dataclass
class TokenRequest:
    """What the token server was asked, for tests that check token reuse."""

    account: str | None
    scopes: list[str]
    service: str | None


class TokenServer:
    """A Docker-style token server: `GET /token?service=..&scope=..` → `{"token", "expires_in"}`.

    Anonymous callers get `pull` when `anonymous_pull` is set (and an empty grant otherwise, as
    public registries do); callers with valid basic credentials get every action they ask for.
    Wrong credentials get 401.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        anonymous_pull: bool = True,
        expires_in: int = 300,
        service: str = SERVICE,
        issuer: str = ISSUER,
        signing: KeyPair | None = None,
        port: int | None = None,
        realm_host: str = "127.0.0.1",
    ) -> None:
        self.users = dict(users)
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in
        self.service = service
        self.issuer = issuer
        self.signing: KeyPair = signing or self_signed_rsa("drop test token signer")
        self.requests: list[TokenRequest] = []
        self.port = port or free_port()
        # It listens on 127.0.0.1 only; ``realm_host`` is where clients are told to find it
        # (pods reach this machine through a forwarder on another address).
        self.url = f"http://{realm_host}:{self.port}/token"
        self.local_url = f"http://127.0.0.1:{self.port}/token"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def mint(self, account: str | None, access: list[dict[str, Any]]) -> str:
        """Sign a token the registry accepts (also used to push without a round-trip)."""
        cert = x509.load_pem_x509_certificate(self.signing.cert_pem)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.service,
            "sub": account or "",
            "iat": now,
            "nbf": now - 10,
            "exp": now + self.expires_in,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(
            claims,
            self.signing.key_pem,
            algorithm="RS256",
            headers={"x5c": [_b64(cert.public_bytes(Encoding.DER))]},
        )

    def _grant(self, account: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            if account is None:
                wanted = [a for a in wanted if a == "pull"] if self.anonymous_pull else []
            if kind and name and wanted:
                access.append({"type": kind, "name": name, "actions": wanted})
        return access

    async def _handle(self, request: web.Request) -> web.Response:
        account: str | None = None
        header = request.headers.get("Authorization", "")
        if header:
            kind, _, value = header.partition(" ")
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if kind.lower() != "basic" or self.users.get(user) != password or not user:
                return web.json_response({"details": "invalid credentials"}, status=401)
            account = user
        scopes = request.query.getall("scope", [])
        self.requests.append(TokenRequest(account, list(scopes), request.query.get("service")))
        token = self.mint(account, self._grant(account, list(scopes)))
        return web.json_response(
            {
                "token": token,
                "access_token": token,
                "expires_in": self.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._handle)
        return app

    def serve_forever(self) -> None:
        """Serve in this process until SIGTERM (the detached token server of the demo)."""
        web.run_app(self.app(), host="127.0.0.1", port=self.port, access_log=None, print=None)

    def start(self) -> None:
        """Serve from a daemon thread of this process."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(self.app(), access_log=None)
            try:
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            except BaseException as err:  # reported to the starting thread
                errors.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="token-server", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"token server did not start: {errors}")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@dataclass
class RegistryServer:
    """A running registry. `url` has no trailing slash; `host` is `127.0.0.1:<port>`."""

    url: str
    host: str
    process: Process
    storage: Path
    auth: AuthMode
    version: int
    users: dict[str, str] = field(default_factory=dict)
    token_server: TokenServer | None = None
    ca_pem: bytes | None = None
    token_process: Process | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self) -> None:
        """Stop the registry and its token server, by PID."""
        self.process.stop()
        if self.token_process is not None:
            self.token_process.stop()
        elif self.token_server is not None:
            self.token_server.stop()

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cadata=self.ca_pem.decode()) if self.ca_pem else None

    # -- pushing -------------------------------------------------------------------------
    def _push_auth(self, repo: str) -> dict[str, str]:
        if self.auth == "basic":
            user, password = next(iter(self.users.items()))
            return {"Authorization": _basic(user, password)}
        if self.auth == "token" and self.token_server is not None:
            grant = [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
            return {"Authorization": "Bearer " + self.token_server.mint("pusher", grant)}
        return {}

    def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, Message, bytes]:
        full = url if url.startswith("http") else self.url + url
        req = urllib.request.Request(full, data=body, method=method, headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_context()) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def _put_blob(self, repo: str, data: bytes, auth: Mapping[str, str]) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", auth)
        if status == 200:
            return digest
        status, headers, body = self._request("POST", f"/v2/{repo}/blobs/uploads/", auth, b"")
        if status != 202:
            raise RuntimeError(f"blob upload start: HTTP {status} {body[:300]!r}")
        location = urllib.parse.urljoin(self.url + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        put_headers = {**auth, "Content-Type": "application/octet-stream"}
        status, _, body = self._request(
            "PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", put_headers, data
        )
        if status != 201:
            raise RuntimeError(f"blob upload: HTTP {status} {body[:300]!r}")
        return digest

    def push(self, repo: str, tags: Iterable[str], artifact: Image | Index) -> str:
        """Push an image or an index under every tag, blobs first; returns the manifest digest.

        An index's platform manifests are put by digest before the index itself, as the
        distribution spec requires (a registry may refuse an index naming unknown manifests).
        """
        auth = self._push_auth(repo)
        images = artifact.images if isinstance(artifact, Index) else (artifact,)
        for image in images:
            for blob in image.blobs():
                self._put_blob(repo, blob.data, auth)
            if isinstance(artifact, Index):
                self._put_manifest(repo, image.digest, image.manifest.media_type, image.manifest.data, auth)
        for tag in tags:
            self._put_manifest(repo, tag, artifact.manifest.media_type, artifact.manifest.data, auth)
        return artifact.digest

    def _put_manifest(
        self, repo: str, reference: str, media_type: str, data: bytes, auth: Mapping[str, str]
    ) -> None:
        status, _, body = self._request(
            "PUT", f"/v2/{repo}/manifests/{reference}", {**auth, "Content-Type": media_type}, data
        )
        if status != 201:
            raise RuntimeError(f"manifest {repo}:{reference}: HTTP {status} {body[:300]!r}")

    def push_image(self, repo: str, tag: str, *, payload: bytes = b"drop-operator test layer") -> str:
        """Push a tiny OCI image as `repo:tag`; returns the manifest digest."""
        return self.push_tags(repo, [tag], payload=payload)

    def push_tags(
        self, repo: str, tags: Iterable[str], *, payload: bytes = b"drop-operator test layer"
    ) -> str:
        """Push one tiny image (a single file, ``/payload``) under every tag."""
        return self.push(repo, tags, build_image([layer({"payload": payload})]))

    def seed_tags(self, repo: str, tags: Iterable[str]) -> None:
        """Add many tags fast: push one image, then write the tag links a manifest PUT writes.

        Used where thousands of tags are needed (pagination, benchmarks); the registry then lists
        and serves them like pushed tags.
        """
        tags = list(tags)
        if not tags:
            return
        digest = self.push_tags(repo, tags[:1])
        algo, _, hexdigest = digest.partition(":")
        tag_root = self.storage / "docker" / "registry" / "v2" / "repositories" / repo / "_manifests" / "tags"
        for tag in tags[1:]:
            current = tag_root / tag / "current"
            index = tag_root / tag / "index" / algo / hexdigest
            current.mkdir(parents=True, exist_ok=True)
            index.mkdir(parents=True, exist_ok=True)
            (current / "link").write_text(digest)
            (index / "link").write_text(digest)


def _binary(version: int) -> Path:
    if version == 2:
        return system_tool("docker-registry", "docker-registry")
    return go_tool("distribution", "registry")


def _token_server_process(token_server: TokenServer, workdir: Path) -> Process:
    """Run ``token_server`` as its own process (``python -m devtools.registry token-server``)."""
    cert, key = token_server.signing.write(workdir, "token-signer")
    users = workdir / "token-users.json"
    users.write_text(json.dumps(token_server.users))
    users.chmod(0o600)
    args = [
        sys.executable,
        "-m",
        "devtools.registry",
        "token-server",
        f"--port={token_server.port}",
        f"--cert={cert}",
        f"--key={key}",
        f"--users={users}",
        f"--expires-in={token_server.expires_in}",
    ]
    if not token_server.anonymous_pull:
        args.append("--no-anonymous-pull")
    return Process("token-server", args, workdir / "token-server.log")


def start_registry(
    workdir: Path,
    *,
    auth: AuthMode = "none",
    version: int = 2,
    users: Mapping[str, str] | None = None,
    anonymous_pull: bool = True,
    token_expires_in: int = 300,
    tls: bool = False,
    tls_names: Sequence[str] = (),
    ready_timeout: float = 30.0,
    detached: bool = False,
    token_realm_host: str = "127.0.0.1",
) -> RegistryServer:
    """Start a registry in `workdir`; the caller stops it with `.stop()`.

    With `detached`, the token server runs as its own process instead of a thread, so the
    registry keeps working after the starting process exits (the demo). `tls_names` are extra DNS
    names its certificate is valid for (a test can then address it by a public host name).
    `token_realm_host` is the host the token realm names (clients that reach this machine's
    loopback ports through a forwarder on another address).
    """
    binary = _binary(version)
    users = dict(users or {"admin": "admin-secret"})
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {secrets.token_hex(16)}",
    ]
    ca_pem: bytes | None = None
    if tls:
        ca = CertAuthority("registry test CA")
        cert, key = ca.issue("registry", names=tls_names).write(workdir, "server")
        ca_pem = ca.cert_pem
        lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
    token_server: TokenServer | None = None
    if auth == "basic":
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(
            "".join(
                f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                for user, pw in users.items()
            )
        )
        lines += ["auth:", "  htpasswd:", "    realm: drop-test", f"    path: {htpasswd}"]
    elif auth == "token":
        token_server = TokenServer(
            users, anonymous_pull=anonymous_pull, expires_in=token_expires_in, realm_host=token_realm_host
        )
        bundle = workdir / "token-signer.crt"
        bundle.write_bytes(token_server.signing.cert_pem)
        lines += [
            "auth:",
            "  token:",
            f"    realm: {token_server.url}",
            f"    service: {token_server.service}",
            f"    issuer: {token_server.issuer}",
            f"    rootcertbundle: {bundle}",
        ]
    token_process: Process | None = None
    if token_server is not None:
        if detached:
            token_process = _token_server_process(token_server, workdir)
            token_process.start()
        else:
            token_server.start()
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    process = Process(f"registry-v{version}", [str(binary), "serve", str(config)], workdir / "registry.log")
    process.start()
    scheme = "https" if tls else "http"
    server = RegistryServer(
        url=f"{scheme}://127.0.0.1:{port}",
        host=f"127.0.0.1:{port}",
        process=process,
        storage=storage,
        auth=auth,
        version=version,
        users=users,
        token_server=token_server,
        ca_pem=ca_pem,
        token_process=token_process,
    )
    try:
        wait_http(
            f"{server.url}/v2/",
            ok=lambda status: status in (200, 401),
            timeout=ready_timeout,
            context=server.ssl_context(),
            alive=process.alive,
        )
        if token_process is not None and token_server is not None:
            wait_http(token_server.local_url, timeout=ready_timeout, alive=token_process.alive)
    except Exception as err:
        tail = process.log_tail()
        server.stop()
        raise RuntimeError(f"registry did not become ready: {err}\n--- log ---\n{tail}") from err
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.registry token-server ...``: the detached token server."""
    parser = argparse.ArgumentParser(prog="python -m devtools.registry")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("token-server", help="serve registry tokens on 127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--cert", type=Path, required=True, help="signing certificate (PEM)")
    serve.add_argument("--key", type=Path, required=True, help="signing key (PEM)")
    serve.add_argument("--users", type=Path, required=True, help="JSON object of user -> password")
    serve.add_argument("--expires-in", type=int, default=300)
    serve.add_argument("--no-anonymous-pull", dest="anonymous_pull", action="store_false")
    args = parser.parse_args(argv)
    TokenServer(
        json.loads(args.users.read_text()),
        anonymous_pull=args.anonymous_pull,
        expires_in=args.expires_in,
        signing=KeyPair(args.cert.read_bytes(), args.key.read_bytes()),
        port=args.port,
    ).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
