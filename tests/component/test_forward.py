"""``devtools.forward``: the TCP forwarder that lets pods on real nodes reach servers on 127.0.0.1
(here between two loopback ports, in-process and as the process the cluster tooling starts)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path

from devtools.forward import serve
from devtools.process import Process, free_port, wait_until


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's half-close
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()  # the half-close reaches the target, which then answers
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_bytes_and_half_close_pass_both_ways() -> None:
    target, target_port = await _echo_server()
    listen_port, stop = free_port(), asyncio.Event()
    forwarder = asyncio.create_task(serve(("127.0.0.1", listen_port), ("127.0.0.1", target_port), stop))
    try:
        await asyncio.sleep(0.2)
        payload = bytes(range(256)) * 2000  # larger than one read
        answers = await asyncio.gather(*(_roundtrip(listen_port, payload) for _ in range(5)))
        assert answers == [b"echo:" + payload] * 5
    finally:
        stop.set()
        await forwarder
        target.close()


async def test_a_target_that_is_down_closes_the_connection() -> None:
    listen_port, stop = free_port(), asyncio.Event()
    forwarder = asyncio.create_task(serve(("127.0.0.1", listen_port), ("127.0.0.1", free_port()), stop))
    try:
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", listen_port)
        with contextlib.suppress(ConnectionResetError):  # aborted: as good as closed
            assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        stop.set()
        await forwarder


def test_the_process_forwards_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as target:
        target_port = target.getsockname()[1]
        listen_port = free_port()
        proc = Process(
            "forward",
            [
                sys.executable,
                "-m",
                "devtools.forward",
                f"127.0.0.1:{listen_port}",
                f"127.0.0.1:{target_port}",
            ],
            tmp_path / "forward.log",
        )
        proc.start()
        try:
            # It says so once it listens (a probe connection would reach the target too).
            wait_until(lambda: "forwarding" in proc.log_tail(), 10, "the forwarder to listen")
            with socket.create_connection(("127.0.0.1", listen_port), timeout=5) as client:
                client.sendall(b"ping")
                target.settimeout(5)
                conn, _ = target.accept()
                with conn:
                    assert conn.recv(4) == b"ping"
                    conn.sendall(b"pong")
                    assert client.recv(4) == b"pong"
        finally:
            proc.stop(timeout=5)
        assert not proc.alive()
