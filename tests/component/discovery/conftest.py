"""Small in-process HTTP servers for discovery tests.

Used for two things only: proxies in front of the real Prometheus (to check a base path, bearer
tokens and custom headers, which Prometheus itself cannot), and fakes for behaviour no real server
here produces (opaque Link tokens, servers ignoring `n`, 429/5xx, stalls, huge or non-JSON
bodies). Each fake says so where it is defined.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """`url = await serve_app(app)`: run an aiohttp app on 127.0.0.1 until the test ends."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
