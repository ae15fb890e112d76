"""Bounded HTTP readiness polling for the servers that devtools, the tests and the demo start."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["wait_http"]


def wait_http(
    url: str,
    *,
    ok: Callable[[int], bool] = lambda status: status == 200,
    timeout: float = 15.0,
    context: ssl.SSLContext | None = None,
    alive: Callable[[], bool] = lambda: True,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll `url` until `ok(status)`; raise with the last error once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server exited before {url} became ready ({last})")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2, context=context) as resp:
                status = resp.status
        except urllib.error.HTTPError as err:
            status = err.code
        except (OSError, ssl.SSLError) as err:
            last = repr(err)
            time.sleep(0.05)
            continue
        if ok(status):
            return
        last = f"HTTP {status}"
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s ({last})")
