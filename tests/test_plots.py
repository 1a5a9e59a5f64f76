"""The figures: labelled and readable, and the same bytes whichever way they are drawn.

These draw from the committed results in ``report/results`` (no benchmark
runs, a few seconds); ``tests/test_bench.py`` draws from fresh quick runs.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest

from chat.lab import results as lab_results
from chat.reporting import canvas, plots, render

RESULTS_DIR = render.REPORT_DIR / "results"
FIGURE_NAMES = {name for drawings in plots.SCENARIO_FIGURES.values() for name in drawings} | {"ours-vs-textbook"}
DRAW_TIMEOUT_S = 120

# `python -m chat report`: a fresh process, matplotlib as installed.
AS_THE_REPORT_DRAWS = """
    from chat.reporting import render
    render.draw_figures(render.load_results(RESULTS), OUT)
"""

# A notebook: the inline backend with the rcParams it used to set (IPython before matplotlib-inline 0.1.4),
# a style sheet on top, the figures drawn in another order, each made and saved as chat.reporting.canvas.show does
# (saved with canvas.save's defaults; not through canvas.show itself, which would write into report/figures).
AS_A_NOTEBOOK_DRAWS = """
    import matplotlib
    import matplotlib.style
    matplotlib.use("module://matplotlib_inline.backend_inline")
    matplotlib.style.use("ggplot")
    matplotlib.rcParams.update({
        "figure.figsize": (6.0, 4.0), "figure.facecolor": (1, 1, 1, 0), "figure.edgecolor": (1, 1, 1, 0),
        "font.size": 10, "figure.dpi": 72, "figure.subplot.bottom": 0.125,
        "savefig.transparent": True, "savefig.bbox": "tight", "lines.linewidth": 3, "svg.hashsalt": None,
        "path.simplify_threshold": 0.5,
    })
    from chat.lab import results as lab_results
    from chat.reporting import canvas, plots
    results = {path.stem: lab_results.load(path) for path in RESULTS.glob("*.json")}
    drawings = [(name, lambda draw=draw, scenario=scenario: draw(results[scenario]))
                for scenario, by_name in plots.SCENARIO_FIGURES.items() for name, draw in by_name.items()]
    drawings.append(("ours-vs-textbook", lambda: plots.ours_vs_textbook(
        results["capacity"], results["latency"], results["slow-consumer"])))
    for name, draw in reversed(drawings):
        canvas.save(canvas.show(name, draw()), OUT / f"{name}.svg")
"""


def draw_in_a_fresh_process(script: str, out: Path) -> dict[str, bytes]:
    prelude = f"from pathlib import Path\nRESULTS, OUT = Path({str(RESULTS_DIR)!r}), Path({str(out)!r})\n"
    run = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], capture_output=True, text=True,
                         timeout=DRAW_TIMEOUT_S, cwd=render.REPORT_DIR.parent,
                         env={**os.environ, "CHAT_LAB_SCALE": "quick"})
    assert run.returncode == 0, run.stderr
    return {path.stem: path.read_bytes() for path in out.glob("*.svg")}


def committed(name: str) -> dict:
    return lab_results.load(RESULTS_DIR / f"{name}.json")


def texts(axes) -> list[str]:
    return [text.get_text() for text in axes.texts]


def legend_texts(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


@pytest.mark.timeout(2 * DRAW_TIMEOUT_S + 30)
def test_plots_are_the_same_bytes_drawn_by_the_report_and_by_a_notebook_with_other_rcparams(tmp_path):
    by_report = draw_in_a_fresh_process(AS_THE_REPORT_DRAWS, tmp_path / "report")
    by_notebook = draw_in_a_fresh_process(AS_A_NOTEBOOK_DRAWS, tmp_path / "notebook")
    assert set(by_report) == set(by_notebook) == FIGURE_NAMES
    assert [name for name in sorted(FIGURE_NAMES) if by_report[name] != by_notebook[name]] == []


def test_plot_of_the_latency_cdf_does_not_depend_on_the_last_bit_of_the_log_axis(tmp_path, monkeypatch):
    """numpy's log10 may differ by an ulp from CPU to CPU (it has an AVX-512 version); the SVG must not."""
    latency = committed("latency")
    as_is = canvas.save(plots.latency_cdf(latency), tmp_path / "as-is.svg").read_bytes()
    log10 = numpy.log10
    for direction in (numpy.inf, -numpy.inf):
        monkeypatch.setattr(numpy, "log10", lambda values, *args, **kwargs: numpy.nextafter(
            log10(values, *args, **kwargs), direction))
        nudged = canvas.save(plots.latency_cdf(latency), tmp_path / "nudged.svg").read_bytes()
        monkeypatch.undo()
        assert nudged == as_is


def test_plot_cdf_points_are_the_ecdf_at_evenly_spaced_ranks():
    assert plots._cdf_points([3.0, 1.0, 2.0, 4.0], points=2) == ([1.0, 2.0, 4.0], [0.25, 0.5, 1.0])
    assert plots._cdf_points([2.0, 1.0], points=10) == ([1.0, 2.0], [0.5, 1.0])  # fewer samples than points: all
    xs, ys = plots._cdf_points([float(value) for value in range(12_000)], points=500)
    assert len(xs) == 501 and xs[-1] == 11_999.0 and ys[-1] == 1.0
    assert plots._cdf_points([]) == ([], [])


def test_plot_axes_have_titles_and_labelled_y_axes():
    figures = [figure for result in render.load_results(RESULTS_DIR).values()
               for figure in plots.figures_for(result).values()]
    figures.append(plots.ours_vs_textbook(committed("capacity"), committed("latency"), committed("slow-consumer")))
    for figure in figures:
        for axes in figure.axes:
            assert axes.get_ylabel(), axes.get_title()
            assert axes.get_title() or axes.get_shared_x_axes().get_siblings(axes) != [axes]  # a twin has none


def test_plot_of_latency_against_load_keeps_its_legend_off_the_curves_and_marks_each_quantile():
    figure = plots.latency_vs_load(committed("latency"))
    (axes,) = figure.axes
    assert axes.get_legend() is None and len(figure.legends) == 1
    assert {"p50", "p99", "p99.9"} <= set(legend_texts(figure.legends[0]))
    markers = {line.get_label().rsplit(" ", 1)[1]: line.get_marker() for line in axes.get_lines()}
    assert len(set(markers.values())) == 3


def test_plot_of_nagle_gives_each_server_and_setting_its_own_look():
    figure = plots.nagle_effect(committed("nagle"))
    (axes,) = figure.axes
    looks = {(bars.patches[0].get_facecolor(), bars.patches[0].get_hatch()) for bars in axes.containers}
    assert len(looks) == len(committed("nagle")["runs"]) == 4
    assert any("off" in text for text in legend_texts(figure.legends[0]))  # below the bars, on no bar label


def test_plot_of_ours_against_textbook_labels_every_bar_zero_included():
    figure = plots.ours_vs_textbook(committed("capacity"), committed("latency"), committed("slow-consumer"))
    for axes in figure.axes:
        assert len(texts(axes)) == 2 and axes.get_ylabel()
    assert texts(figure.axes[2])[0] == "0"  # nothing lost by ours: a bar of height 0, labelled


def with_window(slow: dict) -> dict:
    """A slow-consumer result with the windowed numbers (ours dropped the stalled user after a second)."""
    slow = copy.deepcopy(slow)
    for run in slow["runs"]:
        run["window_s"] = 1.0 if run["server"] == "ours" else run["duration_s"]
        run["latency_window_ms"] = {**run["latency_ms"], "p99": run["latency_ms"]["p99"] * 2}
    return slow


def without_window(slow: dict) -> dict:
    slow = copy.deepcopy(slow)
    for run in slow["runs"]:
        run.pop("window_s", None)
        run.pop("latency_window_ms", None)
    return slow


def test_plot_of_slow_consumer_shows_the_window_and_the_whole_run():
    slow = with_window(committed("slow-consumer"))
    latency, lost = plots.slow_consumer(slow).axes
    window, whole = latency.containers
    ours_stalled = lab_results.matching(slow["runs"], server="ours", stalled_users=1)
    assert window.patches[1].get_height() == lab_results.median_of(ours_stalled, "latency_window_ms.p99")
    assert whole.patches[1].get_height() == lab_results.median_of(ours_stalled, "latency_ms.p99")
    assert any("first 1 s" in text for text in legend_texts(latency.get_legend()))
    assert texts(lost)[:2] == ["0", "0"]


def test_plot_of_slow_consumer_from_older_results_shows_the_whole_run():
    latency, _ = plots.slow_consumer(without_window(committed("slow-consumer"))).axes
    assert len(latency.containers) == 1 and "whole run" in latency.get_ylabel()


def test_plot_of_soak_names_the_thread_line_and_marks_the_warm_up():
    soak = copy.deepcopy(committed("soak"))
    soak["soak"]["warm_up_windows"] = 4
    memory, latency, threads = plots.soak_timeline(soak).axes
    legend = legend_texts(threads.get_legend())
    assert any(text.startswith("threads, sampled") for text in legend)
    assert any(text.startswith("warm-up (4 of") for text in legend)
    assert any(text.startswith("warm-up") for text in legend_texts(latency.get_legend()))
    del soak["soak"]["warm_up_windows"]  # older results: no warm-up to mark
    _, _, threads = plots.soak_timeline(soak).axes
    assert not any(text.startswith("warm-up") for text in legend_texts(threads.get_legend()))


def test_the_committed_figures_are_drawn_from_the_committed_results(tmp_path):
    """The report's figures can't drift from its numbers: redrawn from report/results, they are the same bytes."""
    import matplotlib

    render.draw_figures(render.load_results(RESULTS_DIR), tmp_path)
    for name in sorted(FIGURE_NAMES):
        committed = (render.REPORT_DIR / "figures" / f"{name}.svg").read_bytes()
        if f"Matplotlib v{matplotlib.__version__},".encode() not in committed:
            pytest.skip("the committed figures were drawn by another matplotlib version")
        assert (tmp_path / f"{name}.svg").read_bytes() == committed, name
