"""The floor: the fastest a Python gateway can be. A raw-ASGI forwarder with a bearer check
and a pooled aiohttp client, nothing else. `python -m benchmarks.proxy.floor PORT UPSTREAM`"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn

KEY, UPSTREAM = b"Bearer floor-key", sys.argv[2] if len(sys.argv) > 2 else ""
session: list[aiohttp.ClientSession] = []  # made on the server's loop, at the first request


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if dict(scope["headers"]).get(b"authorization") != KEY:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    if not session:
        session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
    headers = {"content-type": "application/json"}
    async with session[0].post(UPSTREAM + scope["path"], data=body, headers=headers) as r:
        out = [(b"content-type", r.headers["content-type"].encode())]
        await send({"type": "http.response.start", "status": r.status, "headers": out})
        async for chunk in r.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, http="httptools", loop="uvloop")  # fmt: skip
