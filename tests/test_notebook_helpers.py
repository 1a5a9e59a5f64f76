"""What the notebooks lean on: the stored run beside a quick one, the threads check, waiting for bytes."""

from __future__ import annotations

import threading

from chat.lab import notebook as lab
from chat.reporting import canvas, plots


def test_a_quick_figure_gets_the_stored_full_run_beside_it_labelled_with_date_and_machine(monkeypatch):
    monkeypatch.setenv("CHAT_LAB_SCALE", "quick")
    stored = lab.stored_results("latency")
    assert stored is not None and stored["mode"] == "full"
    quick = {**stored, "mode": "quick", "finished": "2026-12-03 10:00"}  # stands in for a live quick run
    shown = canvas.beside_stored("latency-vs-load", plots.latency_vs_load, quick)
    (live_caption, _), (stored_caption, _) = shown.panels
    assert live_caption == "this quick run, 2026-12-03 10:00"
    assert stored_caption.startswith(f"stored full run of {stored['finished']}, on {stored['machine']['cpus']} CPUs")
    page = shown._repr_html_()
    assert page.count("<img") == 2 and "stored full run of" in page
    # at full scale, or for a full run, the one figure alone
    assert not isinstance(canvas.beside_stored("latency-vs-load", plots.latency_vs_load, stored), canvas.Beside)


def test_threads_left_behind_names_the_new_ones():
    before = set(threading.enumerate())
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="chat-test-leftover")
    thread.start()
    try:
        assert lab.threads_left_behind(before) == ["chat-test-leftover"]
    finally:
        stop.set()
        thread.join(5)
    assert lab.threads_left_behind(before) == []


def test_wait_for_bytes_peeks_without_reading():
    with lab.tcp_pair() as (sender, receiver):
        sender.sendall("привет\n".encode())
        assert lab.wait_for_bytes(receiver, 13) == 13
        assert receiver.recv(1024) == "привет\n".encode()  # still all there
        assert receiver.gettimeout() == lab.SOCKET_TIMEOUT_S
