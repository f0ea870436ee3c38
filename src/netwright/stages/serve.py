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
          processes: int = 1, **options: Any) -> None:
    """Serve a run until interrupted (SIGINT/SIGTERM shut down gracefully). ``options``: the rest
    of :func:`create_app`'s (workers, queue, body_timeout_s); a client whose request line and
    headers take over ``header_timeout_s`` is disconnected. ``allowed_hosts``: the Host names
    answered (default: on a loopback address, the loopback names only; elsewhere any).
    ``processes``: server processes on the one port (the kernel spreads the connections among
    them), each with its own model, batching and queue."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise NetwrightError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
    settings = dict(variant=variant, host=host, port=port, engine=engine, threads=threads, max_batch=max_batch,
                    max_wait_ms=max_wait_ms, api_key=api_key, header_timeout_s=header_timeout_s,
                    allowed_hosts=allowed_hosts, **options)
    if processes < 1:
        raise NetwrightError(f"--workers {processes}: give 1 or more server processes")
    if processes == 1:
        _serve_one(run, None, **settings)
    else:
        _serve_many(run, processes, settings)
    print("stopped", flush=True)


def _serve_many(run: Run | str | os.PathLike, processes: int, settings: dict[str, Any]) -> None:
    """``processes`` server processes (forked before any model is loaded), each listening on its
    own socket bound with SO_REUSEPORT to the same port; SIGINT/SIGTERM reach them all, and the
    command ends when they have stopped (exit 2 when one failed). Each starts once the one before
    has its model ready, so the first writes a missing ONNX export and the others serve it (on the
    same engine) instead of finding the run locked."""
    import multiprocessing
    import signal

    ctx = multiprocessing.get_context("fork")
    children: list[Any] = []

    def forward(sig: int, frame: Any) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    for i in range(processes):
        ready = ctx.Event()
        child = ctx.Process(target=_serve_one, args=(run, (i, processes)), kwargs={**settings, "ready": ready},
                            daemon=False)
        child.start()
        children.append(child)
        while not ready.wait(0.2) and child.is_alive():
            pass
        if not child.is_alive():  # it could not start: the others stop too
            forward(signal.SIGTERM, None)
            break
    for child in children:
        child.join()
    failed = [i for i, child in enumerate(children) if child.exitcode]
    if failed:
        forward(signal.SIGTERM, None)
        raise NetwrightError(f"server process {failed[0] + 1} of {processes} stopped with exit code "
                             f"{children[failed[0]].exitcode}; the messages above say why")


def _serve_one(run: Run | str | os.PathLike, worker: tuple[int, int] | None, variant: str | None, host: str,
               port: int, engine: str, threads: int, max_batch: int, max_wait_ms: float | None, api_key: str | None,
               header_timeout_s: float, allowed_hosts: list[str] | None, ready: Any = None, **options: Any) -> None:
    """One server process until SIGINT/SIGTERM; ``worker``: (its index, how many) when there are several,
    each on its own SO_REUSEPORT socket; ``ready``: an event set once the model is loaded."""
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

    app = create_app(run, variant, engine, threads, max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key,
                     allowed_hosts=default_hosts(host, allowed_hosts), **options)
    server = Server(server_config(app, host, port, header_timeout_s, timeout_graceful_shutdown=5))
    if ready is not None:
        ready.set()
    model = app.state.model
    b = app.state.batching
    batching = f"batches of up to {b['max_batch']} rows, {b['max_wait_ms']:g} ms wait" if b["max_batch"] > 1 else "no batching"
    auth = "; API key required" if app.state.api_key else ""
    which = f"; process {worker[0] + 1} of {worker[1]}" if worker else ""
    print(f"serving {model.name} ({model.engine}; {batching}{auth}{which}) on http://{host}:{port}/  "
          "(Ctrl-C to stop)", flush=True)
    import gc

    gc.collect()
    gc.freeze()  # the model and the libraries are never garbage: full collections stop walking them
    if worker is None:
        server.run()
        return
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the kernel spreads connections among processes
    sock.bind((host, port))
    server.run(sockets=[sock])


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
