"""The token bucket and the bounded outbox, without a network."""

from __future__ import annotations

import socket
import threading

import pytest

from chat.tcp.limits import Limits, TokenBucket
from chat.tcp.outbox import Flusher, Outbox
from tests.helpers import wait_until


def test_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate_per_s=10, burst=3, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now=0.0) == pytest.approx(0.1)
    assert bucket.take(now=0.0) == pytest.approx(0.2)  # debt accumulates: each waits its turn


def test_bucket_refills_with_time_up_to_the_burst():
    bucket = TokenBucket(rate_per_s=10, burst=2, now=0.0)
    bucket.take(0.0), bucket.take(0.0)
    assert bucket.take(now=0.1) == 0.0  # one token came back
    assert bucket.take(now=100.0) == 0.0
    assert bucket.take(now=100.0) == 0.0
    assert bucket.take(now=100.0) > 0  # only `burst` tokens were saved up


def test_bucket_paced_caller_keeps_the_rate():
    bucket = TokenBucket(rate_per_s=50, burst=5, now=0.0)
    now = 0.0
    for _ in range(105):
        now += bucket.take(now)
    assert now == pytest.approx(100 / 50)  # 5 free, then 100 at 50 per second


@pytest.mark.parametrize("rate, burst", [(0, 5), (-1, 5), (5, 0)])
def test_bucket_refuses_nonsense(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, now=0.0)


def test_outbox_batches_everything_queued():
    box = Outbox(limit_bytes=100)
    for part in (b"a", b"b", b"c"):
        assert box.put(part)
    assert box.take() == b"abc"
    assert box.queued_bytes == 3  # counted until reported sent
    box.sent(3)
    assert box.queued_bytes == 0


def test_outbox_refuses_past_its_bound_and_counts_unsent_bytes():
    box = Outbox(limit_bytes=10)
    assert box.put(b"x" * 10)
    assert not box.put(b"y")
    data = box.take()
    assert not box.put(b"y")  # taken but not yet sent still counts
    box.sent(len(data))
    assert box.put(b"y")


def test_outbox_close_lets_the_writer_finish_then_stop():
    box = Outbox(limit_bytes=10)
    box.put(b"last")
    box.close()
    assert box.put(b"ignored")  # a leaving client's outbox quietly drops
    assert box.take() == b"last"
    box.sent(4)
    assert box.take() is None
    assert box.take() is None


def test_outbox_take_blocks_until_something_arrives():
    box = Outbox(limit_bytes=10)
    taken = []
    writer = threading.Thread(target=lambda: taken.append(box.take()), name="test-writer")
    writer.start()
    box.put(b"hi")
    writer.join(5)
    assert taken == [b"hi"]


def test_limits_defaults_match_the_documentation():
    limits = Limits()
    assert (limits.max_clients, limits.max_line_bytes, limits.sendq_bytes) == (500, 4096, 1 << 20)
    assert (limits.rate_lines_per_s, limits.rate_burst_lines, limits.registration_timeout_s) == (10.0, 20, 60.0)


@pytest.fixture
def flusher():
    flusher = Flusher()
    flusher.start()
    yield flusher
    flusher.stop()


def test_flusher_writes_queued_bytes_without_the_writer(flusher):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.settimeout(5)
        box = Outbox(limit_bytes=100, sock=ours, flusher=flusher)
        assert box.put("привет\n".encode())
        assert theirs.recv(100) == "привет\n".encode()
        wait_until(lambda: box.queued_bytes == 0)
        assert box.sent_bytes == len("привет\n".encode())


def test_what_the_socket_does_not_take_goes_to_the_writer_in_order(flusher):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = bytes(range(256)) * 4000  # ~1 MB: far more than the socket buffers hold
        box = Outbox(limit_bytes=2_000_000, sock=ours, flusher=flusher)
        assert box.put(big)
        wait_until(lambda: box.sent_bytes > 0)  # the flusher wrote what fitted
        assert box.put(b"after")
        backlog = box.take()  # the writer's turn: the rest, then what came after
        assert backlog == big[box.sent_bytes:] + b"after"
        received = bytearray()
        theirs.settimeout(5)
        while len(received) < box.sent_bytes:
            received += theirs.recv(1 << 20)
        assert bytes(received) == big[: box.sent_bytes]


def test_writer_hands_back_to_the_flusher_once_caught_up(flusher):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.settimeout(5)
        box = Outbox(limit_bytes=100, sock=ours, flusher=flusher)
        box._behind = True  # as if the socket had been full
        box.put(b"one\n")
        data = box.take()
        ours.sendall(data)
        box.sent(len(data))
        box.put(b"two\n")  # the flusher sends this one: nobody calls take()
        received = b""
        while received != b"one\ntwo\n":
            received += theirs.recv(100)


@pytest.mark.parametrize("bad", [dict(socket_sndbuf_bytes=2**31), dict(registration_timeout_s=float("inf")),
                                 dict(rate_lines_per_s=float("nan")), dict(sendq_bytes=-1)])
def test_limits_refuse_values_no_socket_or_clock_can_take(bad):
    with pytest.raises(ValueError):
        Limits(**bad)
