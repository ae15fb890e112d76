"""Discovery benchmarks: time and peak Python memory of the three heavy paths.

1. Listing 20 000 tags, 100 per page, from a real local distribution v3 registry (200 requests).
2. Parsing a 50 000-series Prometheus answer (JSON decode + series handling).
3. Ranking 100 000 candidates from two sources (normalize, merge, imageFilter, sort, topX).

Each is run once without tracing for the time, and once under `tracemalloc` for the peak.
Run: `python benchmarks/discovery_bench.py` (needs `task tools` for distribution v3).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drop_operator.discovery import (  # noqa: E402
    Candidate,
    ImageFilter,
    RegistryConfig,
    RegistrySource,
    SourceCandidates,
    rank,
)
from drop_operator.discovery.prometheus import parse_query_response  # noqa: E402
from tests.infra.registry import start_registry  # noqa: E402


def measure(name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:<48} {elapsed * 1000:9.1f} ms   peak {peak / 2**20:7.1f} MiB")
    return result


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
    return lambda: asyncio.run(coro_fn())


def bench_registry() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg = start_registry(Path(tmp), version=3)
        try:
            tags = [f"{i // 1000}.{i % 1000}.0" for i in range(20_000)]
            reg.seed_tags("bench/repo", tags)
            config = RegistryConfig(reg.url, ["bench/repo"], page_size=100, max_scan=20_000, top_x=10)
            result = measure(
                "registry: 20 000 tags, 100/page (v3, real)", run(lambda: RegistrySource(config).discover())
            )
            assert result.scanned == 20_000, result.scanned
            assert result.candidates[0].image.endswith(":19.999.0")
        finally:
            reg.process.stop()


def bench_prometheus() -> None:
    series = [
        {"metric": {"image": f"registry.example.com/team{i % 300}/app{i}:1.{i % 50}", "namespace": "ns"},
         "value": [1700000000.0, str(i % 97 + 1)]}
        for i in range(50_000)
    ]  # fmt: skip
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}}).encode()
    del series
    print(f"  (answer size {len(body) / 2**20:.1f} MiB)")
    result = measure(
        "prometheus: parse 50 000-series answer", lambda: parse_query_response(json.loads(body), "instant")
    )
    assert len(result.candidates) == 50_000


def bench_rank() -> None:
    a = [Candidate(f"team{i % 500}/app{i}:1.{i % 20}", float(i % 1000)) for i in range(50_000)]
    b = [Candidate(f"docker.io/team{i % 500}/app{i}:1.{i % 20}", 1.0) for i in range(25_000, 75_000)]
    inputs = [SourceCandidates("prometheus-0", a), SourceCandidates("registry-1", b, weight=0.5)]
    filt = ImageFilter("^(?!.*ecr\\..*amazonaws\\.com).*$")
    ranking = measure(
        "rank: 100 000 candidates, filter, topX 30", lambda: rank(inputs, top_x=30, image_filter=filt)
    )
    assert ranking.distinct == 75_000 and len(ranking.images) == 30


def main() -> None:
    print(f"python {sys.version.split()[0]}")
    bench_prometheus()
    bench_rank()
    bench_registry()


if __name__ == "__main__":
    main()
