"""A real Prometheus serving data the caller supplies (tests, the e2e suite and the demo).

The data is written as OpenMetrics, turned into TSDB blocks by `promtool tsdb create-blocks-from
openmetrics`, and served by `/usr/bin/prometheus` with no scrape targets, so every query answer is
determined by the caller. Optional basic auth, TLS and client-certificate checks go through
Prometheus' own `--web.config.file`, i.e. the real server does the checking.

Instant queries only look back 5 minutes, so `series_ending_now` generates samples whose last
point is at the current minute.
"""

from __future__ import annotations

import base64
import math
import ssl
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from devtools.http import wait_http
from devtools.process import Process, free_port
from devtools.tls import CertAuthority, KeyPair
from devtools.tools import system_tool

__all__ = [
    "PrometheusServer",
    "Sample",
    "openmetrics",
    "series_ending_now",
    "start_prometheus",
]


@dataclass(frozen=True)
class Sample:
    """One OpenMetrics sample; `timestamp` in seconds since the epoch."""

    metric: str
    labels: Mapping[str, str]
    value: float
    timestamp: float


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics(samples: Iterable[Sample]) -> str:
    """Render samples as OpenMetrics text: one gauge family per metric, series in time order."""
    families: dict[str, list[Sample]] = {}
    for sample in samples:
        families.setdefault(sample.metric, []).append(sample)
    lines: list[str] = []
    for metric, items in families.items():
        lines.append(f"# TYPE {metric} gauge")
        items.sort(key=lambda s: (sorted(s.labels.items()), s.timestamp))
        for s in items:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            selector = f"{metric}{{{labels}}}" if labels else metric
            lines.append(f"{selector} {_format_value(s.value)} {s.timestamp:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def series_ending_now(
    metric: str,
    series: Sequence[tuple[Mapping[str, str], float | Sequence[float]]],
    *,
    points: int = 10,
    step: float = 60.0,
    now: float | None = None,
) -> list[Sample]:
    """Samples for each `(labels, value)`; the last point is at the current minute.

    A single value is repeated over `points` points spaced `step` seconds apart; a sequence of
    values is laid out so that its last element is the newest point.
    """
    end = math.floor((time.time() if now is None else now) / 60) * 60
    out: list[Sample] = []
    for labels, value in series:
        values = [float(value)] * points if isinstance(value, int | float) else [float(v) for v in value]
        for i, v in enumerate(values):
            out.append(Sample(metric, dict(labels), v, end - step * (len(values) - 1 - i)))
    return out


@dataclass
class PrometheusServer:
    """A running Prometheus; `url` has no trailing slash."""

    url: str
    process: Process
    data_dir: Path
    ca_pem: bytes | None = None
    client: KeyPair | None = None
    username: str | None = None
    password: str | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def ssl_context(self, *, with_client_cert: bool = True) -> ssl.SSLContext | None:
        """A client context trusting the test CA (and presenting the client cert if there is one)."""
        if self.ca_pem is None:
            return None
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        if with_client_cert and self.client is not None:
            ctx.load_cert_chain(self.files["client.crt"], self.files["client.key"])
        return ctx

    def auth_headers(self) -> dict[str, str]:
        if self.username is None or self.password is None:
            return {}
        raw = f"{self.username}:{self.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll `/-/ready` until it answers 200."""
        wait_http(
            f"{self.url}/-/ready",
            timeout=timeout,
            context=self.ssl_context(),
            alive=self.process.alive,
            headers=self.auth_headers(),
        )

    def stop(self) -> None:
        """Stop the server by PID (an outage, or the end); `start` brings it back unchanged."""
        self.process.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start the stopped server again: same port, same data, same auth."""
        if not self.process.alive():
            self.process.start()
        self.wait_ready(timeout)


def _write_web_config(
    workdir: Path, *, basic_auth: tuple[str, str] | None, tls: bool, client_cert: bool
) -> tuple[Path | None, dict[str, Path], CertAuthority | None, KeyPair | None]:
    files: dict[str, Path] = {}
    lines: list[str] = []
    ca: CertAuthority | None = None
    client: KeyPair | None = None
    if tls or client_cert:
        ca = CertAuthority("prometheus test CA")
        files["server.crt"], files["server.key"] = ca.issue("prometheus").write(workdir, "server")
        files["ca.crt"] = workdir / "ca.crt"
        files["ca.crt"].write_bytes(ca.cert_pem)
        lines += [
            "tls_server_config:",
            f"  cert_file: {files['server.crt']}",
            f"  key_file: {files['server.key']}",
        ]
        if client_cert:
            client = ca.issue("drop-operator", server=False, client=True)
            files["client.crt"], files["client.key"] = client.write(workdir, "client")
            lines += [
                "  client_auth_type: RequireAndVerifyClientCert",
                f"  client_ca_file: {files['ca.crt']}",
            ]
    if basic_auth is not None:
        user, password = basic_auth
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        lines += ["basic_auth_users:", f"  {user}: '{hashed}'"]
    if not lines:
        return None, files, None, None
    path = workdir / "web.yml"
    path.write_text("\n".join(lines) + "\n")
    return path, files, ca, client


def start_prometheus(
    workdir: Path,
    data: str | Iterable[Sample] = "",
    *,
    basic_auth: tuple[str, str] | None = None,
    tls: bool = False,
    client_cert: bool = False,
    ready_timeout: float = 30.0,
    port: int | None = None,
) -> PrometheusServer:
    """Load `data` and start Prometheus in `workdir`; the caller stops `server.process`."""
    prometheus = system_tool("prometheus", "prometheus")
    promtool = system_tool("promtool", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    text = data if isinstance(data, str) else openmetrics(data)
    if text.strip() and text.strip() != "# EOF":
        source = workdir / "data.om"
        source.write_text(text if text.rstrip().endswith("# EOF") else text.rstrip() + "\n# EOF\n")
        result = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", source, data_dir],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"promtool could not load the test data:\n{result.stdout}\n{result.stderr}")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    web_config, files, ca, client = _write_web_config(
        workdir, basic_auth=basic_auth, tls=tls, client_cert=client_cert
    )
    port = port or free_port()
    argv: list[str | Path] = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if web_config is not None:
        argv.append(f"--web.config.file={web_config}")
    process = Process("prometheus", [str(a) for a in argv], workdir / "prometheus.log")
    process.start()
    scheme = "https" if ca is not None else "http"
    server = PrometheusServer(
        url=f"{scheme}://127.0.0.1:{port}",
        process=process,
        data_dir=data_dir,
        ca_pem=ca.cert_pem if ca else None,
        client=client,
        username=basic_auth[0] if basic_auth else None,
        password=basic_auth[1] if basic_auth else None,
        files=files,
    )
    try:
        server.wait_ready(ready_timeout)
    except Exception as err:
        tail = process.log_tail()
        process.stop()
        raise RuntimeError(f"Prometheus did not become ready: {err}\n--- log ---\n{tail}") from err
    return server
