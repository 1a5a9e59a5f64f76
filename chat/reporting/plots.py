"""Figures from benchmark results (the dictionaries :mod:`chat.lab.bench` makes).

Each function takes results and returns a :class:`matplotlib.figure.Figure`,
made without pyplot, so the library never touches the notebook's backend; a
notebook shows a returned figure inline.

Every figure is made and saved by :mod:`chat.reporting.canvas`, so the same
data gives the same bytes whoever draws it.
"""

from __future__ import annotations

import math

from chat.lab.results import matching, median_of, median_passed_on_per_s, run_lost_share
from chat.lab.stats import ecdf
from chat.reporting.canvas import new_figure, styled

OURS_COLOR, NAIVE_COLOR, EXTRA_COLOR = "#1f77b4", "#d62728", "#7f7f7f"
OURS_TINT, NAIVE_TINT, EXTRA_TINT = "#aec7e8", "#ff9896", "#d9d9d9"  # light versions, for the second of two bars
WARM_UP_COLOR = "#ececec"
LABELS = {"ours": "ours (chat.tcp.server)", "naive": "textbook (chat.lab.naive)"}
SHORT_LABELS = {"ours": "ours", "naive": "textbook"}
COLORS = {"ours": OURS_COLOR, "naive": NAIVE_COLOR}
TINTS = {"ours": OURS_TINT, "naive": NAIVE_TINT}
QUANTILE_STYLES = {"p50": (":", "o"), "p99": ("-", "s"), "p99.9": ("--", "^")}  # line style and marker
BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.16), "ncols": 2}  # a legend under its axes' x label
CDF_POINTS = 500  # the CDF is drawn through this many ranks at most: steps of 0.2 %, half a pixel
def _points(runs: list[dict], server: str, x_key: str, path: str) -> tuple[list, list]:
    xs = sorted({run[x_key] for run in matching(runs, server=server)})
    return xs, [median_of(runs, path, server=server, **{x_key: x}) for x in xs]


def _short(value: float) -> str:
    """A value for a bar's label: ``6.3M``, ``26k``, ``36.2``, ``0.741``, ``0``."""
    if value is None or math.isnan(value):
        return "n/a"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _cdf_points(samples: list[float], points: int = CDF_POINTS) -> tuple[list[float], list[float]]:
    """The empirical CDF at the first sample and at (at most) ``points`` evenly spaced ranks.

    Ranks are whole numbers, so the same samples give the same points on any machine.

    >>> _cdf_points([3.0, 1.0, 2.0, 4.0], points=2)
    ([1.0, 2.0, 4.0], [0.25, 0.5, 1.0])
    """
    xs, ys = ecdf(samples)
    if not xs:
        return [], []
    ranks = sorted({1, *(-(-k * len(xs) // points) for k in range(1, points + 1))})  # ceil(k n / points)
    return [xs[rank - 1] for rank in ranks], [ys[rank - 1] for rank in ranks]


def _quantile_key(axes_or_figure, servers: tuple[str, ...], quantiles: tuple[str, ...], **options):
    """One legend for lines coloured by server and styled by quantile: each server, then each quantile."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLORS[server], linewidth=2.5, label=LABELS[server]) for server in servers]
    handles += [Line2D([], [], color="0.25", linestyle=QUANTILE_STYLES[q][0], marker=QUANTILE_STYLES[q][1],
                       markersize=4, label=q) for q in quantiles]
    return axes_or_figure.legend(handles=handles, fontsize=8, **options)


def _quantile_lines(axes, runs: list[dict], x_key: str, quantiles: tuple[str, ...]) -> None:
    for server in ("ours", "naive"):
        for quantile in quantiles:
            linestyle, marker = QUANTILE_STYLES[quantile]
            xs, ys = _points(runs, server, x_key, f"latency_ms.{quantile}")
            axes.plot(xs, ys, linestyle=linestyle, marker=marker, markersize=4, color=COLORS[server],
                      label=f"{LABELS[server]} {quantile}")


# -- the figures ------------------------------------------------------------------------------


@styled
def throughput_vs_clients(capacity: dict):
    """Deliveries per second, every user sending as fast as it can, against the number of users."""
    figure = new_figure()
    axes = figure.add_subplot()
    runs = capacity["runs"]
    for server in ("ours", "naive"):
        xs, ys = _points(runs, server, "users", "deliveries_per_s")
        axes.plot(xs, ys, "o-", color=COLORS[server], label=f"{LABELS[server]}: whole messages delivered")
    xs = sorted({run["users"] for run in matching(runs, server="naive")})
    relayed = [median_passed_on_per_s(runs, server="naive", users=x) for x in xs]
    axes.plot(xs, relayed, "s--", color=EXTRA_COLOR, label="textbook: lines passed on, whole or not")
    axes.set(xscale="log", yscale="log", xlabel="users (all sending as fast as they can)",
             ylabel="deliveries per second (all users)", title="Throughput against users")
    axes.legend(fontsize=8)
    return figure


@styled
def latency_vs_load(latency: dict):
    """p50, p99 and p99.9 latency against offered load, for both servers."""
    figure = new_figure()
    axes = figure.add_subplot()
    runs = latency["runs"]
    quantiles = ("p50", "p99", "p99.9")
    _quantile_lines(axes, runs, "offered_per_s", quantiles)
    axes.set(xscale="log", yscale="log", xlabel="offered load (messages per second, all users)",
             ylabel="latency (ms)", title=f"Latency against offered load, {runs[0]['users']} users")
    _quantile_key(figure, ("ours", "naive"), quantiles, loc="outside lower center", ncols=5)
    return figure


@styled
def latency_cdf(latency: dict, offered_per_s: float = 500):
    """The distribution of latencies at one load: the fraction of messages faster than x.

    Each curve goes through at most ``CDF_POINTS`` of its sorted samples,
    evenly spaced by rank (see :func:`_cdf_points` and the module docstring).
    """
    figure = new_figure()
    axes = figure.add_subplot()
    for server in ("ours", "naive"):
        samples = [value for run in matching(latency["runs"], server=server, offered_per_s=offered_per_s)
                   for value in run["latency_samples_ms"]]
        xs, ys = _cdf_points(samples)
        label = f"{LABELS[server]}, {len(samples):,} sampled messages"
        axes.step(xs, ys, where="post", color=COLORS[server], label=label)
    axes.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of messages at most this late",
             title=f"Latency CDF at {offered_per_s:g} messages/s, {latency['runs'][0]['users']} users")
    axes.legend(fontsize=8, loc="lower right")
    return figure


@styled
def scaling_latency(scaling: dict):
    """p50 and p99 latency against users, each user sending one message per second."""
    figure = new_figure()
    axes = figure.add_subplot()
    quantiles = ("p50", "p99")
    _quantile_lines(axes, scaling["runs"], "users", quantiles)
    axes.set(xscale="log", yscale="log", xlabel="users (each sends 1 message/s)", ylabel="latency (ms)",
             title="Latency as users grow")
    _quantile_key(axes, ("ours", "naive"), quantiles, loc="upper left")
    return figure


@styled
def nagle_effect(nagle: dict):
    """p50 and p99 with TCP_NODELAY on and off, for both servers: light, hatched bars are Nagle's (off)."""
    figure = new_figure()
    axes = figure.add_subplot()
    runs = sorted(nagle["runs"], key=lambda run: (run["server"] != "ours", not run["server_options"].get("nodelay")))
    width = 0.8 / len(runs)
    for index, run in enumerate(runs):
        server, on = run["server"], bool(run["server_options"].get("nodelay"))
        values = [run["latency_ms"]["p50"], run["latency_ms"]["p99"]]
        label = f"{SHORT_LABELS[server]}, TCP_NODELAY {'on' if on else 'off'}"
        bars = axes.bar([group + (index - (len(runs) - 1) / 2) * width for group in range(2)], values, width,
                        color=COLORS[server] if on else TINTS[server], edgecolor=COLORS[server],
                        hatch=None if on else "//", label=label)
        axes.bar_label(bars, [_short(value) for value in values], fontsize=7)
    axes.set_xticks([0, 1], ["p50 (median)", "p99"])
    axes.set(yscale="log", ylabel="latency (ms)",
             title=f"Nagle's algorithm: TCP_NODELAY on and off\n{runs[0]['users']} users, "
                   f"{runs[0]['offered_per_s']:g} messages/s")
    axes.margins(y=0.1)
    _plain_numbers(axes.yaxis)
    figure.legend(*axes.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    return figure


SLOW_CASES = [("ours", 0), ("ours", 1), ("naive", 0), ("naive", 1)]  # (server, stalled users), left to right


@styled
def slow_consumer(slow: dict):
    """Others' p99 and losses, without and with one user that never reads.

    The p99 is shown for the messages sent while the stalled user was
    connected (``latency_window_ms``; for a baseline, the same stretch from its
    start) and, lighter, for the whole run; results from before the windowed
    numbers show the whole run only.
    """
    figure = new_figure(7.5, 4.0)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    runs = slow["runs"]
    labels = [f"{SHORT_LABELS[server]}\n{'stalled user' if stalled else 'baseline'}" for server, stalled in SLOW_CASES]
    _slow_latency(left, runs, labels)
    lost = [median_of([{**run, "lost_share": run_lost_share(run)} for run in runs], "lost_share",
                      server=server, stalled_users=stalled) for server, stalled in SLOW_CASES]
    bars = right.bar(labels, [100 * share for share in lost], color=[COLORS[server] for server, _ in SLOW_CASES])
    right.bar_label(bars, [_short(100 * share) for share in lost], fontsize=8)
    right.set(ylabel="others' messages lost, whole run (%)", ylim=(0, 105), title="Messages the others lost")
    for axes in (left, right):
        axes.tick_params(axis="x", labelsize=8)
    stalled = matching(runs, stalled_users=1)[0]
    figure.suptitle(f"One user who never reads, among {stalled['users'] - 1} sending "
                    f"{stalled['offered_per_s']:g} messages/s in all", fontsize=10)
    return figure


def _has_window(runs: list[dict]) -> bool:
    return all((run.get("latency_window_ms") or {}).get("count") for run in runs)


def _slow_latency(axes, runs: list[dict], labels: list[str]) -> None:
    whole = [median_of(runs, "latency_ms.p99", server=server, stalled_users=stalled) for server, stalled in SLOW_CASES]
    colors = [COLORS[server] for server, _ in SLOW_CASES]
    axes.set(ylabel="others' p99 latency (ms)", title="Latency of the others")
    if not _has_window(runs):  # results from before the windowed numbers
        axes.set_ylabel("others' p99 latency, whole run (ms)")
        bars = axes.bar(labels, whole, color=colors)
        axes.bar_label(bars, [_short(value) for value in whole], fontsize=7)
        return
    window = [median_of(runs, "latency_window_ms.p99", server=server, stalled_users=stalled)
              for server, stalled in SLOW_CASES]
    positions = range(len(labels))
    bars = axes.bar([p - 0.2 for p in positions], window, 0.4, color=colors, label=_window_label(runs))
    axes.bar_label(bars, [_short(value) for value in window], fontsize=7)
    bars = axes.bar([p + 0.2 for p in positions], whole, 0.4, color=[TINTS[server] for server, _ in SLOW_CASES],
                    edgecolor=colors, hatch="//", label="whole run")
    axes.bar_label(bars, [_short(value) for value in whole], fontsize=7)
    axes.set_xticks(list(positions), labels)
    axes.margins(y=0.12)
    legend = axes.legend(fontsize=7, **{**BELOW, "ncols": 1})
    for handle in legend.legend_handles:  # the colours stand for the servers; the legend tells the two bars apart
        handle.set_facecolor("0.35" if handle.get_hatch() is None else EXTRA_TINT)
        handle.set_edgecolor("0.35")


def _window_label(runs: list[dict]) -> str:
    """What the windowed bars measure, with the median window of each server."""
    seconds = {server: median_of(runs, "window_s", server=server, stalled_users=1) for server in ("ours", "naive")}
    return (f"while it was connected ({SHORT_LABELS['ours']}: first {seconds['ours']:.2g} s, "
            f"{SHORT_LABELS['naive']}: {seconds['naive']:.2g} s);\nbaseline: the same stretch")


@styled
def ours_vs_textbook(capacity: dict, latency: dict, slow: dict):
    """The three numbers that separate the designs, side by side, each bar labelled with its value."""
    figure = new_figure(7.5, 3.4)
    lost_share = [{**run, "share": run_lost_share(run)} for run in slow["runs"]]
    cells = [
        ("Throughput, 50 users", "deliveries per second", "log",
         lambda s: median_of(capacity["runs"], "deliveries_per_s", server=s, users=50)),
        ("Latency at 500 msg/s", "p99 latency (ms)", "log",
         lambda s: median_of(latency["runs"], "latency_ms.p99", server=s, offered_per_s=500)),
        ("With a user who never reads", "others' messages lost (%)", "linear",
         lambda s: 100 * median_of(lost_share, "share", server=s, stalled_users=1)),
    ]
    for index, (title, ylabel, scale, value) in enumerate(cells, start=1):
        axes = figure.add_subplot(1, 3, index)
        values = [value("ours"), value("naive")]
        bars = axes.bar(["ours", "textbook"], values, color=[OURS_COLOR, NAIVE_COLOR])
        axes.bar_label(bars, [_short(v) for v in values], fontsize=8)
        axes.set(title=title, ylabel=ylabel, yscale=scale)
        axes.margins(y=0.12)
        axes.title.set_fontsize(9)
    return figure


@styled
def udp_vs_tcp(udp: dict):
    """Delivery ratio and p99 latency of TCP and UDP at the same load, under 0%, 1% and 10% loss."""
    figure = new_figure(7.5, 3.6)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    losses = sorted({run["injected_loss"] for run in udp["runs"]})
    colors = {"tcp": OURS_COLOR, "udp": "#ff7f0e"}
    for offset, transport in ((-0.2, "tcp"), (0.2, "udp")):
        rows = {run["injected_loss"]: run for run in udp["runs"] if run["transport"] == transport}
        xs = [index + offset for index in range(len(losses))]
        measured = [loss in rows and "not_measured" not in rows[loss] for loss in losses]
        ratio = [100 * rows[loss]["delivered"] / rows[loss]["expected"] if ok else 0 for loss, ok in zip(losses, measured)]
        p99 = [rows[loss]["latency_ms"]["p99"] if ok else 0 for loss, ok in zip(losses, measured)]
        bars = left.bar(xs, ratio, width=0.4, color=colors[transport], label=transport.upper())
        left.bar_label(bars, [f"{value:.1f}" if ok else "" for value, ok in zip(ratio, measured)], fontsize=7)
        bars = right.bar(xs, p99, width=0.4, color=colors[transport], label=transport.upper())
        right.bar_label(bars, [f"{value:,.0f}" if value >= 100 else f"{value:.3g}" if ok else ""
                               for value, ok in zip(p99, measured)], fontsize=7)
        for x, ok in zip(xs, measured):
            if not ok:
                for axes in (left, right):
                    axes.text(x, 0, "not\nmeasured", ha="center", va="bottom", fontsize=7, rotation=90)
    labels = [f"{loss:.0%} loss" for loss in losses]
    for axes in (left, right):
        axes.set_xticks(range(len(losses)), labels)
    figure.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    left.set(ylabel="messages delivered (%)", ylim=(0, 112), title="Delivered")
    right.set(ylabel="p99 latency (ms)", yscale="log", title="Latency")
    _plain_numbers(right.yaxis)
    measured = next(run for run in udp["runs"] if "not_measured" not in run)
    figure.suptitle(f"TCP and UDP under injected packet loss, {measured['users']} users, "
                    f"{measured['offered_per_s']:g} messages/s", fontsize=10)
    return figure


def _plain_numbers(axis) -> None:
    """Label a log axis's ticks as plain numbers ("2", "0.5", "1000"), not "2×10⁰", minor ticks included."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    if axis.get_view_interval()[1] / max(axis.get_view_interval()[0], 1e-12) < 100:  # within two decades: label 2, 5
        axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else ""))
    else:
        axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


@styled
def soak_timeline(soak: dict):
    """The soak run over time: the server's memory and threads, and the steady users' p99 per window."""
    report = soak["soak"]
    figure = new_figure(7.5, 3.9)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    _soak_memory(left, report, _warm_up(left, report))
    _warm_up(right, report)
    windows = report["windows"]
    for quantile, style in (("p99", "s-"), ("p50", "o:")):
        right.plot([w["t_s"] for w in windows], [w["latency_ms"][quantile] for w in windows], style, markersize=4,
                   color=OURS_COLOR, label=f"{quantile}, each window")
    right.set(xlabel="time (s)", ylabel="steady users' latency (ms)", ylim=(0, None), title="Latency per window")
    right.legend(fontsize=7, **BELOW)
    too_slow = report["server_leaves"].get("too slow")
    figure.suptitle(f"Soak: {report['steady_users']} steady users at {report['steady_rate_per_s']:g} messages/s "
                    f"in {report['window_s']:g} s windows, with churn"
                    + (f"; {too_slow} users dropped as too slow" if too_slow else ""), fontsize=10)
    return figure


def _warm_up(axes, report: dict) -> list:
    """Shade the warm-up windows (results that say how many); the legend handle, if any."""
    count = report.get("warm_up_windows")
    if not count:
        return []
    end_s, label = report["windows"][count - 1]["t_s"], f"warm-up ({count} of {len(report['windows'])} windows)"
    return [axes.axvspan(0, end_s, color=WARM_UP_COLOR, zorder=0, label=label)]


def _soak_memory(axes, report: dict, warm_up: list) -> None:
    samples = report["rss_samples"]
    times = [sample[0] for sample in samples]
    rss = axes.plot(times, [sample[1] / 2**20 for sample in samples], color=OURS_COLOR, label="server RSS (MiB)")
    axes.set(xlabel="time (s)", ylabel="server RSS (MiB)", ylim=(0, None), title="Server memory and threads")
    threads = axes.twinx()
    sampled = threads.plot(times, [sample[2] for sample in samples], color=EXTRA_COLOR, linewidth=0.8,
                           label="threads, sampled each second:\n~2 per connected user")
    ends = threads.plot([w["t_s"] for w in report["windows"]], [w["server_threads"] for w in report["windows"]], "x",
                        color=EXTRA_COLOR, label="threads at each window's end\n(its users gone)")
    threads.set(ylim=(0, None))
    threads.set_ylabel("server threads", color=EXTRA_COLOR)
    threads.grid(False)
    threads.legend(handles=[*rss, *sampled, *ends, *warm_up], fontsize=7, **BELOW)  # the twin's: drawn on top


# Each scenario's figures, by the stable names the notebooks and the report use.
SCENARIO_FIGURES = {
    "capacity": {"throughput-vs-clients": throughput_vs_clients},
    "latency": {"latency-vs-load": latency_vs_load, "latency-cdf": latency_cdf},
    "scaling": {"scaling-latency": scaling_latency},
    "nagle": {"nagle": nagle_effect},
    "slow-consumer": {"slow-consumer": slow_consumer},
    "udp": {"udp-vs-tcp": udp_vs_tcp},
    "soak": {"soak": soak_timeline},
}


def figures_for(result: dict) -> dict:
    """The figures one scenario's result draws, by name."""
    return {name: draw(result) for name, draw in SCENARIO_FIGURES.get(result["scenario"], {}).items()}
