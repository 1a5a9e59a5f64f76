"""Every benchmark scenario's quick mode runs, its results are stored, and the plots render from them.

These check what a run must show whatever the machine's load (nothing lost on
our side, the textbook server's failures); speed targets are reported by the
benchmarks themselves, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from chat.lab import bench, measure
from chat.lab import results as lab_results
from chat.reporting import canvas, plots
from chat.reporting.terminal import python_command

pytestmark = pytest.mark.slow


def load(stored, name):
    return lab_results.load(stored / f"{name}.json")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(bench.SCENARIOS))
def test_quick_mode_runs_and_is_saved_as_json_and_csv(stored, name):
    result = load(stored, name)
    assert result["scenario"] == name and result["mode"] == "quick"
    assert result["targets"]
    assert result["machine"]["cpus"] >= 1
    header = (stored / f"{name}.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "latency_ms.p99" in header and "latency_samples_ms" not in header
    assert result["runs"] or name == "soak"
    for run in result["runs"]:
        if "not_measured" in run:  # TCP under loss, where iptables or root is missing
            continue
        if run["server"] in ("ours", "blaster"):
            assert (run["lost"], run["duplicated"], run["out_of_order"], run["garbled"]) == (0, 0, 0, 0), run["users"]
            assert run["delivered"] == run["expected"] > 0
            assert run["senders_with_loss"] == run["senders_out_of_order"] == 0
        if run["per_sender"] is not None:  # each sender's own counts add up to the run's
            assert sum(counts["lost"] for counts in run["per_sender"].values()) == run["lost"]
            assert sum(counts["delivered"] for counts in run["per_sender"].values()) == run["delivered"]


def test_capacity_shows_the_textbook_server_garbling_lines(stored):
    naive = [run for run in load(stored, "capacity")["runs"] if run["server"] == "naive"]
    assert all(run["garbled"] > 0 and run["lost"] > 0 for run in naive)


def test_slow_consumer_is_dropped_and_freezes_the_textbook_server(stored):
    runs = load(stored, "slow-consumer")["runs"]
    ours_stalled = lab_results.matching(runs, server="ours", stalled_users=1)
    assert all(run["server_left"].get("too slow") == 1 for run in ours_stalled)
    assert all(run["sendq_peak_bytes"] <= 1 << 20 for run in ours_stalled)
    for run in ours_stalled:  # the others' latency is judged while the stalled user was there: the server timed its drop
        assert 0 < run["window_s"] < run["duration_s"]
        assert 0 < run["latency_window_ms"]["count"] < run["latency_ms"]["count"]
    naive_stalled = lab_results.matching(runs, server="naive", stalled_users=1)
    assert all(run["lost"] > 0 for run in naive_stalled)


def test_soak_loses_nothing_and_the_server_meets_every_churn_action(stored):
    result = load(stored, "soak")
    report = result["soak"]
    assert report["lost_total"] == 0 and report["server_errors"] == 0
    assert report["churn_failed"] == {}
    assert sum(report["churn_done"].values()) > 20
    assert len(report["windows"]) >= 2


def test_udp_loses_what_was_dropped_and_tcp_loses_nothing(stored):
    runs = load(stored, "udp")["runs"]
    udp = {run["injected_loss"]: run for run in runs if run["transport"] == "udp"}
    assert udp[0.0]["lost"] == 0
    assert 0.8 < udp[0.10]["delivered"] / udp[0.10]["expected"] < 0.97  # about 10 % dropped, reproducibly
    for run in runs:
        if run["transport"] == "tcp" and "not_measured" not in run:
            assert run["lost"] == 0  # TCP turns loss into latency


def test_a_target_is_judged_on_the_exact_value_not_the_rounded_one():
    just_over = bench._target("queued / bound", bench._ratio(1_050_000, 1 << 20), "<=", 1.0)
    assert just_over["value"] == 1.0014 and just_over["met"] is False


def test_targets_are_reported_with_values(stored):
    for name in bench.SCENARIOS:
        for target in load(stored, name)["targets"]:
            assert set(target) == {"name", "value", "relation", "limit", "met"}
            assert target["value"] is not None


FIGURES = [
    ("throughput_vs_clients", ("capacity",)),
    ("latency_vs_load", ("latency",)),
    ("latency_cdf", ("latency",)),
    ("scaling_latency", ("scaling",)),
    ("nagle_effect", ("nagle",)),
    ("slow_consumer", ("slow-consumer",)),
    ("ours_vs_textbook", ("capacity", "latency", "slow-consumer")),
    ("udp_vs_tcp", ("udp",)),
    ("soak_timeline", ("soak",)),
]


@pytest.mark.timeout(600)  # selected alone (-k plot), the first one runs the scenarios for `stored`
@pytest.mark.parametrize("function, inputs", FIGURES, ids=[name for name, _ in FIGURES])
def test_plots_render_reproducibly_from_stored_results(stored, tmp_path, function, inputs):
    draw = getattr(plots, function)
    for suffix in ("svg", "png"):
        first = canvas.save(draw(*[load(stored, name) for name in inputs]), tmp_path / f"a.{suffix}")
        second = canvas.save(draw(*[load(stored, name) for name in inputs]), tmp_path / f"b.{suffix}")
        assert first.stat().st_size > 1000
        assert first.read_bytes() == second.read_bytes()  # same data, same bytes
    assert b"<dc:date>" not in (tmp_path / "a.svg").read_bytes()


@pytest.mark.timeout(600)
def test_plot_of_slow_consumer_shows_the_window_of_a_fresh_run(stored):
    latency, _ = plots.slow_consumer(load(stored, "slow-consumer")).axes
    window, whole = latency.containers  # while the stalled user was connected, and the whole run
    assert len(window.patches) == len(whole.patches) == 4


def test_bench_command_line_writes_results_and_figures_at_the_sizes_asked_for(tmp_path):
    command = ("bench", "latency", "--quick", "--users", "6", "--rates", "120,240", "--seconds", "0.5")
    result = subprocess.run(python_command(*command, "--out", str(tmp_path), "--csv", "--plot"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert {path.name for path in tmp_path.iterdir()} >= {"latency.json", "latency.csv", "latency-vs-load.svg"}
    stored = json.loads((tmp_path / "latency.json").read_text())
    assert stored["command"] == "python -m chat bench " + " ".join(command[1:])
    assert {(run["server"], run["users"], run["offered_per_s"]) for run in stored["runs"]} == {
        (server, 6, rate) for server in ("ours", "naive") for rate in (120, 240)}
    assert all(run["sent"] == 6 * round(run["offered_per_s"] * 0.5 / 6) for run in stored["runs"])  # 0.5 s of sending
    # the latency target is set at 50 users and 500 msg/s: at other sizes it is information, not judged
    assert next(t for t in stored["targets"] if t["name"].startswith("our p99"))["met"] is None
    assert "at 6 users, 240 msg/s" in result.stdout


def test_a_size_a_scenario_has_no_use_for_is_refused():
    with pytest.raises(TypeError, match="capacity does not take rates"):
        bench.run_scenario("capacity", rates=[100])
    with pytest.raises(ValueError, match="one value of users"):
        bench.run_scenario("nagle", users=[10, 20])
    result = subprocess.run(python_command("bench", "ceiling", "--users", "5"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "ceiling takes only these sizes: none" in result.stderr


def test_peak_cpu_busy_is_the_busiest_second_of_cpu_time():
    from chat.lab.harness import ProcessSample, ProcessSampler

    sampler = ProcessSampler(pid=0)
    # 0.2 CPU-s in the first second, then a full core for a second, then idle again
    sampler.samples = [ProcessSample(t / 10, 0, 1, cpu) for t, cpu in
                       [(0, 0.0), (5, 0.1), (10, 0.2), (15, 0.7), (20, 1.2), (25, 1.2), (30, 1.2)]]
    assert sampler.peak_cpu_busy(window_s=1.0) == 1.0


def test_scaling_counts_the_cpu_of_each_kind_of_our_servers_threads(stored):
    ours = lab_results.matching(load(stored, "scaling")["runs"], server="ours")
    for run in ours:
        by_thread = run["server_cpu_by_thread"]
        assert by_thread["chat-reader"]["threads"] == by_thread["chat-writer"]["threads"] == run["users"]
        assert by_thread["chat-flusher"]["threads"] == 1
        assert run["server_cpu_window_s"] > 0
    biggest = max(ours, key=lambda run: run["users"])
    assert biggest["server_cpu_by_thread"]["chat-reader"]["cpu_s"] > 0  # it queued every line it relayed
    assert biggest["server_cpu_by_thread"]["chat-flusher"]["cpu_s"] > 0  # and the flusher sent them
    assert all("server_cpu_by_thread" not in run for run in lab_results.matching(load(stored, "scaling")["runs"], server="naive"))


def test_scaling_sets_the_flushers_cost_per_send_beside_the_kernels_floor(stored):
    result = load(stored, "scaling")
    ours = lab_results.matching(result["runs"], server="ours")
    for run in ours:  # during the load the flusher sent to clients, some of them together in one sweep
        assert 0 < run["flusher_sweeps"] <= run["flusher_sends"] and run["flusher_bytes_per_send"] > 0
    biggest = max(ours, key=lambda run: run["users"])
    floor = biggest["kernel_floor"]
    assert floor["clients"] == biggest["users"] and floor["sends_not_whole"] == 0 and floor["cpu_us_per_send"] > 0
    by_name = {target["name"]: target for target in result["targets"]}
    ratio = by_name[f"flusher per send / the kernel's floor, at {biggest['users']} users"]["value"]
    assert ratio == pytest.approx(biggest["flusher_us_per_send"] / floor["cpu_us_per_send"], rel=1e-3)


def test_the_kernels_floor_is_one_whole_send_to_each_socket_per_sweep():
    from chat.lab.floor import kernel_send_floor

    floor = kernel_send_floor(clients=20, payload_bytes=120, sweeps=10)
    assert floor["sends"] == 200 and floor["sends_not_whole"] == 0 and floor["payload_bytes"] == 120
    assert 0 < floor["cpu_us_per_send"] and 0 < floor["wall_us_per_send"]


def test_thread_cpu_is_read_per_kind_of_thread():
    import os
    import threading

    from chat.lab.harness import read_thread_cpu, thread_role

    assert thread_role("chat-reader-12") == "chat-reader" and thread_role("chat-flusher") == "chat-flusher"
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    spinners = [threading.Thread(target=spin, name=f"spinner-{number}") for number in (1, 2)]
    for spinner in spinners:
        spinner.start()
    try:
        stop.wait(0.3)  # let them run
        reading = read_thread_cpu(os.getpid(), {spinner.native_id: spinner.name for spinner in spinners})
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join(5)
    assert reading["spinner"]["threads"] == 2
    assert reading["spinner"]["cpu_s"] > 0.01
    # Once a thread has ended, /proc has nothing for it (the kernel may list it a moment after join()).
    gone_by = time.monotonic() + 5
    while any(os.path.exists(f"/proc/self/task/{spinner.native_id}") for spinner in spinners):
        assert time.monotonic() < gone_by, "the ended threads are still listed in /proc"
        stop.wait(0.01)
    assert read_thread_cpu(os.getpid(), {spinner.native_id: spinner.name for spinner in spinners}) == {}


def test_thread_cpu_readings_keep_the_last_whole_one_between_the_last_delivery_and_the_first_leave():
    readings = measure.ThreadCpuReadings(server=None)
    role = lambda seconds, threads=3: {"chat-reader": {"threads": threads, "cpu_s": seconds}}
    second = 1_000_000_000
    readings._readings = [(0, role(1.0)), (1 * second, role(2.5)), (2 * second, role(4.0)),
                          (3 * second, role(4.5, threads=2)),  # a thread had ended: its time is gone
                          (4 * second, role(9.0))]  # the users were leaving by then
    assert readings.used_until(end_ns=3_500_000_000, after_ns=1_500_000_000) == (
        {"chat-reader": {"threads": 3, "cpu_s": 3.0}}, 2.0)
    assert readings.used_until(end_ns=None) == ({"chat-reader": {"threads": 3, "cpu_s": 8.0}}, 4.0)
    # Nothing between the last delivery and the first leave: no figure rather than a partial one.
    assert readings.used_until(end_ns=2_500_000_000, after_ns=2_200_000_000) == (None, None)


def test_csv_columns_flatten_nested_results():
    run = {"users": 3, "server_cpu_by_thread": {"chat-reader": {"cpu_s": 2.0}}, "latency_samples_ms": [1.0]}
    assert lab_results.flatten(run) == {"users": 3, "server_cpu_by_thread.chat-reader.cpu_s": 2.0}
