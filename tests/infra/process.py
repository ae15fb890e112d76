"""Helpers shared by the Prometheus and registry fixtures: tool lookup and HTTP readiness.

Process handling (free ports, start/stop by PID), tool lookup and readiness polling come from
`devtools`, the same code the control plane, the e2e suite and the demo use; this module only turns
a missing tool into a test *failure* that says how to get it (a skipped server test would look like
a passing one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

from devtools.http import wait_http
from devtools.process import Process, free_port
from devtools.tools import ToolMissingError, go_tool, system_tool

__all__ = ["Process", "fail_if_missing", "free_port", "go_binary", "system_binary", "wait_http"]

P = ParamSpec("P")
T = TypeVar("T")


def system_binary(binary: str, package: str) -> Path:
    """A Debian-packaged binary, or fail the test naming the package."""
    return fail_if_missing(system_tool, binary, package)


def go_binary(tool: str, binary: str) -> Path:
    """A binary built by `task tools`, or fail the test saying so."""
    return fail_if_missing(go_tool, tool, binary)


def fail_if_missing(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call `fn`; a ToolMissingError fails the test with its message (how to install the tool)."""
    try:
        return fn(*args, **kwargs)
    except ToolMissingError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)
