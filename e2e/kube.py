"""kubectl, bounded polls and small accessors: what every e2e scenario needs from the cluster.

The suite talks to the cluster through kubectl with the admin kubeconfig, as a person would; the
operator under test is the only thing that uses the chart's ServiceAccount.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
Obj = dict[str, Any]


class Kubectl:
    """kubectl bound to one kubeconfig."""

    def __init__(self, binary: Path | str, kubeconfig: Path | str) -> None:
        self.binary = str(binary)
        self.kubeconfig = str(kubeconfig)

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def apply(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Server-side apply: no last-applied annotation, so large ConfigMaps fit."""
        self.run(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=drop-e2e",
            "-f",
            "-",
            input=yaml.safe_dump_all(list(docs)),
        )

    def items(self, kind: str, *, namespace: str | None = None, selector: str | None = None) -> list[Obj]:
        args = ["get", kind, "-o", "json"]
        args += [f"--namespace={namespace}"] if namespace else []
        args += [f"--selector={selector}"] if selector else []
        items: list[Obj] = json.loads(self.run(*args))["items"]
        return items

    def get(self, kind: str, name: str, *, namespace: str | None = None) -> Obj | None:
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        args += [f"--namespace={namespace}"] if namespace else []
        out = self.run(*args).strip()
        return json.loads(out) if out else None

    def delete(self, kind: str, *names: str, namespace: str | None = None, wait: bool = False) -> None:
        args = ["delete", kind, *names, "--ignore-not-found", f"--wait={str(wait).lower()}"]
        args += [f"--namespace={namespace}"] if namespace else []
        self.run(*args)


def eventually(check: Callable[[], T | None], *, within: float, what: Callable[[], str] | str) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and its last state)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"not within {within:.0f}s: {detail}")
        time.sleep(0.5)


def condition(obj: Mapping[str, Any] | None, type_: str) -> Obj:
    """The condition of ``type_`` in ``obj.status.conditions`` ({} when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def status(obj: Mapping[str, Any] | None) -> Obj:
    return dict((obj or {}).get("status") or {})


class PodWatch:
    """A watch on pods in the background, recording every pod it reports.

    Pull pods can come and go between two polls; a watch sees each of them. The watch resumes from
    the resourceVersion of a list taken in ``__enter__``, so every pod created after ``__enter__``
    returns is seen, however long the watch takes to connect (``kubectl get --watch`` would miss
    the ones created and deleted before it connected).
    """

    def __init__(self, kubectl: Kubectl, namespace: str, selector: str) -> None:
        self._kubectl = kubectl
        self._path = f"/api/v1/namespaces/{namespace}/pods?" + urllib.parse.urlencode(
            {"labelSelector": selector}
        )
        self._proc: subprocess.Popen[str] | None = None
        self._pods: dict[str, Obj] = {}
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PodWatch:
        listed = json.loads(self._kubectl.run("get", "--raw", self._path))
        for pod in listed.get("items") or []:
            self._pods[pod["metadata"]["name"]] = pod
        version = listed["metadata"]["resourceVersion"]
        watch = f"{self._path}&watch=1&timeoutSeconds=3600&resourceVersion={version}"
        self._proc = subprocess.Popen(
            [self._kubectl.binary, f"--kubeconfig={self._kubectl.kubeconfig}", "get", "--raw", watch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._read, name="pod-watch", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if not line.strip():
                continue
            event = json.loads(line)
            pod = event.get("object") or {}
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED") and "metadata" in pod:
                self._pods[pod["metadata"]["name"]] = pod

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
            self._proc.wait(10)

    @property
    def pods(self) -> dict[str, Obj]:
        """Every pod seen, by name, in its last reported state."""
        return dict(self._pods)

    def by_label(self, key: str) -> dict[str, set[str]]:
        """Pod names seen, grouped by the value of label ``key``."""
        out: dict[str, set[str]] = {}
        for name, pod in self.pods.items():
            value = (pod["metadata"].get("labels") or {}).get(key)
            if value:
                out.setdefault(value, set()).add(name)
        return out
