"""What keeps the server up under bad, slow, large or too many requests.

- :class:`Guard`, plain ASGI middleware: the optional API key (401), the body limit counted
  while the body streams in (413, also for chunked uploads without Content-Length), a deadline
  for the whole body (408), and per-route counts and latency for ``/metrics``.
- :class:`Workers`: decoding and encoding run on a thread pool sized to the cores, behind a
  bounded queue; a request past it gets 503 with ``Retry-After`` at once.
- :func:`server_config`: uvicorn with a deadline for request headers (slow clients closed)
  and for idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.responses import JSONResponse

from .protocol import BadRequest

MAX_BODY = 1 << 20  # bytes: larger requests get 413
# bytes of request or response below which decoding and encoding stay on the event loop: a
# 16 KiB tensor body (one 28x28 image) decodes in ~0.15 ms, about what the trip to a thread and
# back costs under load; larger ones go to the pool so that health checks never wait behind them
INLINE_BYTES = 16 << 10
OPEN_PATHS = ("/v2/health/",)  # answered without the API key
# bodies are JSON, or raw tensors after a JSON header (the binary extension); the types a browser
# may post to another site without asking first (text/plain, forms) are refused with 415
BODY_TYPES = ("application/json", "application/octet-stream")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CLOSE = {"Connection": "close"}  # the rest of the body is never read: drop the connection after answering


class Guard:
    """ASGI middleware in front of the app (Starlette's ``BaseHTTPMiddleware`` costs more per
    request than the digits model does)."""

    def __init__(self, app: Any, requests_total: Any, latency: Any, api_key: str | None = None,
                 body_timeout_s: float = 30.0, allowed_hosts: tuple[str, ...] | None = None):
        self.app, self.requests_total, self.latency = app, requests_total, latency
        self.api_key, self.body_timeout_s = api_key, body_timeout_s
        self.allowed_hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refusal = self.refuse(scope)
        try:
            if refusal is not None:
                await JSONResponse({"error": refusal.message}, refusal.status, refusal.headers)(scope, receive,
                                                                                            send_status)
            else:
                await self.app(scope, self.limited(receive), send_status)
        finally:  # a bug's 500 is answered outside this middleware: it is counted all the same
            route = scope.get("route")
            name = route.path if route is not None else "unmatched"
            self.requests_total.labels(name, str(status[0])).inc()
            self.latency.labels(name).observe(time.perf_counter() - t0)

    def refuse(self, scope: dict) -> BadRequest | None:
        """The answer to a request refused on its headers alone, if it is."""
        headers = dict(scope.get("headers") or [])
        if self.allowed_hosts is not None:  # a page elsewhere that renamed its site to this address gets no answer
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed_hosts:
                return BadRequest(400, f"Host '{host[:60]}' is not served here; the server answers "
                                       f"{', '.join(sorted(self.allowed_hosts))} (serve --allowed-host NAME adds one)")
        if self.api_key and not scope["path"].startswith(OPEN_PATHS):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            given = auth[7:] if auth[:7].lower() == "bearer " else headers.get(b"x-api-key", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return BadRequest(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' "
                                       "or 'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY:
            return too_large(f"{int(length)} bytes")
        if scope.get("method") == "POST" and b"content-type" in headers:
            kind = headers[b"content-type"].decode("latin-1").split(";", 1)[0].strip().lower()
            if kind not in BODY_TYPES and not kind.endswith("+json"):
                return BadRequest(415, f"Content-Type {kind[:60] or '(empty)'} is not accepted; send the body as "
                                       "application/json (or application/octet-stream for binary tensors)")
        return None

    def limited(self, receive: Callable) -> Callable:
        """``receive``, counting body bytes (413 past ``MAX_BODY``) against one deadline (408)."""
        loop = asyncio.get_running_loop()
        deadline, seen, done = loop.time() + self.body_timeout_s, 0, False

        async def receive_limited() -> dict:
            nonlocal seen, done
            if done:  # body read: waits for a disconnect are not timed
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise BadRequest(408, f"the request body did not arrive within {self.body_timeout_s:g} s; "
                                      "send it faster or in smaller requests", CLOSE) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    raise too_large(f"over {MAX_BODY} bytes")
                done = not message.get("more_body", False)
            return message

        return receive_limited


def host_name(header: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def too_large(size: str) -> BadRequest:
    return BadRequest(413, f"request body is {size}; the limit is {MAX_BODY}: send fewer rows per request", CLOSE)


class Workers:
    """A thread pool for decoding and encoding, sized to the cores, and a bound on the requests
    in progress (running, queued, or waiting for the model): past ``threads + queue`` a request
    is refused at once with 503 and ``Retry-After``."""

    def __init__(self, threads: int | None = None, queue: int = 64):
        threads = threads or os.cpu_count() or 1
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self.limit, self.busy = threads + queue, 0

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.busy >= self.limit:  # only the event loop's thread counts: no lock needed
            raise BadRequest(503, f"the server is busy ({self.busy} requests in progress); retry in a second",
                             {"Retry-After": "1"})
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1

    async def run(self, fn: Callable, *args: Any, size: int | None = None) -> Any:
        """``fn(*args)`` on the pool; work on fewer than ``INLINE_BYTES`` bytes (``size``) runs here
        on the event loop, where it costs less than the trip to a thread and back."""
        if size is not None and size < INLINE_BYTES:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def server_config(app: Any, host: str, port: int, header_timeout_s: float = 10.0, keep_alive_s: int = 5,
                  **options: Any):
    """A uvicorn configuration whose connections are closed when a request's line and headers
    take over ``header_timeout_s`` to arrive (uvicorn alone only times out idle keep-alives)."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Protocol(HttpToolsProtocol):
        header_timer: asyncio.TimerHandle | None = None

        def arm(self) -> None:
            self.disarm()
            self.header_timer = self.loop.call_later(header_timeout_s, self.transport.close)

        def disarm(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self.disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            waiting = not self.pipeline  # a pipelined request's headers are in already
            super().on_response_complete()
            if waiting and not self.transport.is_closing():
                self.arm()

    return uvicorn.Config(app, host=host, port=port, http=Protocol, timeout_keep_alive=keep_alive_s,
                          log_level="warning", access_log=False, **options)
