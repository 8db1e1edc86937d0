"""A webhook receiver for the benchmarks: asyncio HTTP/1.1 with keep-alive, answers 204 at
once, records when each delivery arrived. Runs as its own process so the bench measures
the dispatcher, not a receiver sharing its interpreter.

    python -m bench.webhook_sink OUT.json    # prints "listening PORT"; SIGTERM writes OUT
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


async def serve(out: str) -> None:
    arrivals: list[tuple[float, int, float | None]] = []  # (when, job, its finished_at)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                now = time.time()
                data = json.loads(body).get("data", {})
                arrivals.append((now, data.get("id"), data.get("finished_at_epoch")))
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=512)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    with open(out, "w") as f:
        json.dump(arrivals, f)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
