"""Helpers shared by the Prometheus and registry fixtures: tool lookup and HTTP readiness.

Process handling (free ports, start/stop by PID) and tool lookup come from `devtools`, the same
code the control plane uses; this module only turns a missing tool into a test *failure* that
says how to get it (a skipped server test would look like a passing one) and polls HTTP
readiness with a bounded timeout.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.localcluster import Process, free_port
from devtools.tools import ToolMissingError, go_tool, system_tool

__all__ = ["Process", "free_port", "go_binary", "system_binary", "wait_http"]


def system_binary(binary: str, package: str) -> Path:
    """A Debian-packaged binary, or fail the test naming the package."""
    try:
        return system_tool(binary, package)
    except ToolMissingError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)


def go_binary(tool: str, binary: str) -> Path:
    """A binary built by `task tools`, or fail the test saying so."""
    try:
        return go_tool(tool, binary)
    except ToolMissingError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)


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
