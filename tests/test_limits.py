"""The token bucket and the bounded outbox, without a network."""

from __future__ import annotations

import threading

import pytest

from chat.limits import Limits, TokenBucket
from chat.outbox import Outbox


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
