"""``drop-operator`` with a memory report on SIGUSR1, for ``benchmarks/memory_bench.py``.

Run as ``python benchmarks/memprobe.py run ...``: the arguments go to ``drop-operator`` unchanged.
On SIGUSR1 the process writes a JSON report to ``$DROP_MEMPROBE_REPORT``:

* ``informers``: per informer, the objects cached and their deep size in bytes (each object
  counted once, so strings shared between cached objects count once), and the size of its indexes;
* ``tracemalloc``: the top allocation sites and files, when ``$DROP_MEMPROBE_TRACE`` is a number of
  frames (tracemalloc itself costs memory: read RSS from a run without it).

Nothing here is imported before the operator's own modules but the standard library, so the RSS
of this process is the operator's.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACE_FRAMES = int(os.environ.get("DROP_MEMPROBE_TRACE") or 0)
if TRACE_FRAMES:
    tracemalloc.start(TRACE_FRAMES)


def deep_size(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it holds (dicts, lists, tuples, sets), each object once."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
    return total


def informer_sizes() -> list[dict[str, Any]]:
    from drop_operator.runtime.informer import Informer

    out = []
    for inf in (o for o in gc.get_objects() if isinstance(o, Informer)):
        objects = list(inf._store.values())
        seen: set[int] = set()
        size = deep_size(objects, seen) - sys.getsizeof(objects)
        index = deep_size([inf._indexes, inf._index_values], seen)
        out.append(
            {
                "informer": inf.label,
                "objects": len(objects),
                "bytes": size,
                "bytes_per_object": size // len(objects) if objects else 0,
                "index_bytes": index,
            }
        )
    return sorted(out, key=lambda r: -int(r["bytes"]))


def tracemalloc_top(limit: int = 25) -> dict[str, Any]:
    if not tracemalloc.is_tracing():
        return {}
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    lines = snapshot.statistics("lineno")[:limit]
    files = snapshot.statistics("filename")[:limit]
    return {
        "total_bytes": sum(s.size for s in snapshot.statistics("filename")),
        "lines": [
            {"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}", "bytes": s.size, "count": s.count}
            for s in lines
        ],
        "files": [{"where": s.traceback[0].filename, "bytes": s.size, "count": s.count} for s in files],
    }


def report(_signum: int, _frame: Any) -> None:
    path = os.environ.get("DROP_MEMPROBE_REPORT")
    if not path:
        return
    data = {"informers": informer_sizes(), "tracemalloc": tracemalloc_top()}
    Path(path + ".tmp").write_text(json.dumps(data, indent=1))
    os.replace(path + ".tmp", path)


signal.signal(signal.SIGUSR1, report)

if __name__ == "__main__":
    from drop_operator.cli import main

    sys.exit(main(sys.argv[1:]))
