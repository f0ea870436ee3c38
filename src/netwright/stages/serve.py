"""The ``serve`` stage: a run's model behind an HTTP server (Open Inference Protocol v2, ``/predict``,
``/explain``, ``/metrics`` and a page to try it) until interrupted."""

from __future__ import annotations

import os
from typing import Any

from ..deploy.server import create_app
from ..errors import NetwrightError
from ..run import Run


def serve(run: Run | str | os.PathLike, variant: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          engine: str = "auto", threads: int = 1, max_batch: int = 64, max_wait_ms: float | None = None,
          api_key: str | None = None, header_timeout_s: float = 10.0, allowed_hosts: list[str] | None = None,
          **options: Any) -> None:
    """Serve a run until interrupted (SIGINT/SIGTERM shut down gracefully). ``options``: the rest
    of :func:`create_app`'s (workers, queue, body_timeout_s); a client whose request line and
    headers take over ``header_timeout_s`` is disconnected. ``allowed_hosts``: the Host names
    answered (default: on a loopback address, the loopback names only; elsewhere any)."""
    import contextlib
    import signal
    import socket

    import uvicorn

    from ..deploy.guard import server_config

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # stop gracefully on SIGINT/SIGTERM, then exit 0 (uvicorn re-raises them)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise NetwrightError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
    app = create_app(run, variant, engine, threads, max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key,
                     allowed_hosts=default_hosts(host, allowed_hosts), **options)
    server = Server(server_config(app, host, port, header_timeout_s, timeout_graceful_shutdown=5))
    model = app.state.model
    b = app.state.batching
    batching = f"batches of up to {b['max_batch']} rows, {b['max_wait_ms']:g} ms wait" if b["max_batch"] > 1 else "no batching"
    auth = "; API key required" if app.state.api_key else ""
    print(f"serving {model.name} ({model.engine}; {batching}{auth}) on http://{host}:{port}/  (Ctrl-C to stop)",
          flush=True)
    import gc

    gc.collect()
    gc.freeze()  # the model and the libraries are never garbage: full collections stop walking them
    server.run()
    print("stopped", flush=True)


def default_hosts(host: str, given: list[str] | None) -> tuple[str, ...] | None:
    """The Host names to answer: those given (with the bound address), else on a loopback address
    the loopback names (a page elsewhere whose name points here gets 400), else any (None)."""
    import ipaddress

    from ..deploy.guard import LOOPBACK_HOSTS

    if given:
        return (*given, host)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return (*LOOPBACK_HOSTS, host) if loopback else None
