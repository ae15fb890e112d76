"""A userspace TCP forwarder: ``LISTEN_HOST:PORT`` -> ``TARGET_HOST:PORT``, one process per port.

Pods on real nodes live in network namespaces of their own and cannot reach 127.0.0.1 of this
machine, where the API server and the test sources listen. :mod:`devtools.localcluster` puts an
address on the pods' bridge (``devtools.realnodes.GATEWAY``) and runs one of these per port a pod
needs, so that ``GATEWAY:PORT`` reaches ``127.0.0.1:PORT``.

Chosen over iptables DNAT (which also needs ``route_localnet`` on the bridge): a process started
and stopped by PID leaves no kernel state behind when a run dies, and nothing about it needs
undoing but the process itself. Bytes are copied as they are (TLS stays end to end); each side's
EOF is passed on as a half-close, a reset on one side aborts the other.

    python -m devtools.forward 10.244.0.1:6443 127.0.0.1:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence

__all__ = ["parse_address", "serve"]

_CHUNK = 1 << 16


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` -> ``(host, port)``; IPv4 addresses and host names only."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.transport.abort()


async def _connect(
    target: tuple[str, int], client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.transport.abort()
        return
    try:
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
    finally:
        for writer in (client_writer, upstream_writer):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], stop: asyncio.Event) -> None:
    """Forward every connection to ``listen`` to ``target`` until ``stop`` is set; prints one line
    once it listens."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _connect(target, reader, writer)

    server = await asyncio.start_server(handle, *listen, reuse_address=True)
    print(f"forwarding {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        # Not wait_closed(): on newer Pythons it waits for open connections (watches never end);
        # their tasks end with the event loop.
        server.close()


async def _main(listen: tuple[str, int], target: tuple[str, int]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(listen, target, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.forward", description=__doc__.splitlines()[0])
    parser.add_argument("listen", type=parse_address, help="address to listen on, host:port")
    parser.add_argument("target", type=parse_address, help="address to forward to, host:port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.listen, args.target))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
