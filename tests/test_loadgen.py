"""The load generator counts what really happened: losses, duplicates, reordering, latency."""

from __future__ import annotations

from array import array

import pytest

from chat.lab.config import GroupResult, message_text, parse_message_text
from chat.lab.loadgen import LoadConfig, merge, run_load
from tests.faulty import FaultyRelay

MESSAGES = 40  # per sender: four of each kind of fault (seq % 10 == 3, 5, 7)


@pytest.mark.parametrize("processes", [0, 1], ids=["thread", "process"])
def test_counts_drops_duplicates_and_reordering_exactly(processes):
    config = LoadConfig(users=4, senders=3, messages=MESSAGES, rate_per_s=600, alphabet="cyrillic",
                        stop_when_complete=False, drain_idle_s=0.3, max_duration_s=20)
    with FaultyRelay(config.message_bytes, config.alphabet) as relay:
        result = run_load(relay.server_address, config, processes=processes)
    receivers_per_sender = config.users - 1
    faults = MESSAGES // 10 * config.senders * receivers_per_sender  # of each kind
    assert result.sent == config.senders * MESSAGES
    assert result.expected == config.senders * MESSAGES * receivers_per_sender
    assert result.lost == faults
    assert result.duplicated == faults
    assert result.out_of_order == faults
    assert result.delivered == result.expected - faults
    assert result.garbled == 0
    for sender in ("u0", "u1", "u2"):
        assert result.per_sender[sender] == {
            "sent": MESSAGES, "unsent": 0, "expected": MESSAGES * receivers_per_sender,
            "delivered": (MESSAGES - 4) * receivers_per_sender, "lost": 4 * receivers_per_sender,
            "duplicated": 4 * receivers_per_sender, "out_of_order": 4 * receivers_per_sender,
        }
    assert result.latency_ms["count"] == result.delivered


def test_a_stalling_server_shows_up_as_latency_not_as_a_slower_generator():
    """Open loop: the schedule does not wait for the server (no coordinated omission)."""
    pause_s = 0.4
    config = LoadConfig(users=2, senders=1, messages=100, rate_per_s=200, alphabet="ascii",
                        stop_when_complete=False, drain_idle_s=0.6, max_duration_s=20)
    with FaultyRelay(config.message_bytes, config.alphabet, pause_at_seq=50, pause_s=pause_s) as relay:
        result = run_load(relay.server_address, config, processes=0)
    assert result.latency_ms["max"] >= pause_s * 1000 * 0.9  # the stall is measured...
    assert result.send_lag_ms["p99"] < 50  # ...while the generator kept its schedule
    # messages scheduled during the stall waited too: a closed loop would show one slow message
    slow = [value for value in result.latency_samples_ms if value > 100]
    assert len(slow) >= 0.5 * pause_s * config.rate_per_s


def test_message_text_round_trip_and_fragments_are_refused():
    text = message_text(17, 98765432100, 64, "cyrillic")
    assert len(text.encode()) <= 64
    assert parse_message_text(text, 64, "cyrillic") == (17, 98765432100)
    assert parse_message_text(text[1:], 64, "cyrillic") is None  # "7 98765432100 юю..." is a fragment
    assert parse_message_text(text[:-1], 64, "cyrillic") is None
    assert parse_message_text("017 1 " + text.split(" ", 2)[2], 64, "cyrillic") is None


@pytest.mark.parametrize("bad", [
    {"users": 3, "senders": 4},
    {"users": 3, "stalled_users": 1, "senders": 3},
    {"rate_per_s": 0},
    {"burst": 0},
])
def test_load_config_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        LoadConfig(**bad)


def test_against_our_server_nothing_is_lost(start_server):
    server = start_server()
    config = LoadConfig(users=8, messages=200, burst=25, max_duration_s=30)
    result = run_load(server.server_address, config, processes=0)
    assert (result.lost, result.duplicated, result.out_of_order, result.garbled) == (0, 0, 0, 0)
    assert result.delivered == result.expected == 8 * 7 * 200
    assert result.deliveries_per_s > 0


def test_latency_within_a_window_counts_only_messages_sent_before_its_end():
    config = LoadConfig(users=2, messages=3, rate_per_s=10, keep_send_times=True)
    group = GroupResult(latencies_us=array("d", [1000.0, 2000.0, 30000.0]), sent_at_ns=array("q", [10, 20, 30]))
    result = merge(config, [group], start_ns=0, window_end_ns=25)
    assert result.window_s == 25e-9
    assert result.latency_window_ms["count"] == 2 and result.latency_window_ms["max"] == 2.0
    assert result.latency_ms["count"] == 3 and result.latency_ms["max"] == 30.0
    assert merge(config, [group], start_ns=0).latency_window_ms is None  # no window asked for
