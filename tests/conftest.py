"""Shared fixtures: every test proves it left no thread behind and no thread raised."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import HealthCheck, settings

from chat.tcp.server import ChatServer
from tests.helpers import RawClient

THREAD_EXIT_TIMEOUT_S = 5.0

# CI sees the same examples every run (a red build is then reproducible);
# HYPOTHESIS_PROFILE=dev explores far more, with fresh random examples.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def no_thread_left_and_none_raised():
    """Fail a test whose threads raised, or that leaves a thread running."""
    raised: list[threading.ExceptHookArgs] = []
    previous_hook = threading.excepthook
    threading.excepthook = raised.append
    before = set(threading.enumerate())
    try:
        yield
    finally:
        threading.excepthook = previous_hook
    deadline = time.monotonic() + THREAD_EXIT_TIMEOUT_S
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [thread.name for thread in set(threading.enumerate()) - before if thread.is_alive()]
    assert not raised, f"a thread raised: {[(args.thread.name, args.exc_value) for args in raised]}"
    assert not left, f"threads left running: {left}"


@pytest.fixture
def start_server():
    """Start a ChatServer on 127.0.0.1:0 with the given limits; stop it after the test."""
    servers: list[ChatServer] = []

    def start(**options) -> ChatServer:
        options.setdefault("rate_lines_per_s", 0)  # flood control has tests of its own
        server = ChatServer("127.0.0.1", 0, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert server.stats().errors == 0, "the server handled an unexpected exception"


@pytest.fixture
def server(start_server) -> ChatServer:
    return start_server()


@pytest.fixture
def raw_clients():
    """Open raw line clients to an address; all are closed after the test."""
    opened: list[RawClient] = []

    def open_client(address, name: str | None = None, **options) -> RawClient:
        client = RawClient(address, **options)
        opened.append(client)
        if name is not None:
            client.register(name)
        return client

    yield open_client
    for client in opened:
        client.close()


@pytest.fixture(scope="session")
def stored(tmp_path_factory):
    """Every benchmark scenario run once in quick mode and saved; tests read the saved files back."""
    from chat.lab import bench
    from chat.lab import results as lab_results

    folder = tmp_path_factory.mktemp("results")
    for name in bench.SCENARIOS:
        options = {"seconds": 6} if name == "soak" else {}
        lab_results.save(bench.run_scenario(name, "quick", **options), folder, write_csv=True)
    return folder
