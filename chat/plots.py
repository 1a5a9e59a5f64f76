"""Figures from benchmark results (the dictionaries :mod:`chat.bench` saves).

Each function takes results and returns a :class:`matplotlib.figure.Figure`,
made without pyplot, so the library never touches the notebook's backend; a
notebook shows a returned figure inline.  :func:`save` writes files that are
byte-for-byte the same for the same data: a fixed ``svg.hashsalt``, and no
date or software version in the metadata.
"""

from __future__ import annotations

from pathlib import Path

from chat.bench import matching, median_of
from chat.stats import ecdf

OURS_COLOR, NAIVE_COLOR, EXTRA_COLOR = "#1f77b4", "#d62728", "#7f7f7f"
LABELS = {"ours": "ours (chat.server)", "naive": "textbook (chat.naive)"}
COLORS = {"ours": OURS_COLOR, "naive": NAIVE_COLOR}
STYLE = {
    "svg.hashsalt": "chat-lab",  # SVG ids depend on it; fixed, they don't change from run to run
    "svg.fonttype": "path",
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _figure(width: float = 6.4, height: float = 4.0):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height), layout="constrained")
    return figure


def _axes(figure, *args):
    import matplotlib

    with matplotlib.rc_context(STYLE):
        return figure.add_subplot(*args)


def save(figure, path: Path, dpi: int = 110) -> Path:
    """Write ``figure`` reproducibly (SVG or PNG by the file's suffix)."""
    import matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Date": None} if path.suffix == ".svg" else {"Software": None}
    with matplotlib.rc_context(STYLE):
        figure.savefig(path, dpi=dpi, metadata=metadata)
    return path


def _points(runs: list[dict], server: str, x_key: str, path: str) -> tuple[list, list]:
    xs = sorted({run[x_key] for run in matching(runs, server=server)})
    return xs, [median_of(runs, path, server=server, **{x_key: x}) for x in xs]


# -- the figures ------------------------------------------------------------------------------


def throughput_vs_clients(capacity: dict):
    """Deliveries per second, every user sending as fast as it can, against the number of users."""
    figure = _figure()
    axes = _axes(figure, 1, 1, 1)
    runs = capacity["runs"]
    for server in ("ours", "naive"):
        xs, ys = _points(runs, server, "users", "deliveries_per_s")
        axes.plot(xs, ys, "o-", color=COLORS[server], label=f"{LABELS[server]}: whole messages delivered")
    xs = sorted({run["users"] for run in matching(runs, server="naive")})
    relayed = [median_of(_with_relayed(runs), "relayed_per_s", server="naive", users=x) for x in xs]
    axes.plot(xs, relayed, "s--", color=EXTRA_COLOR, label="textbook: lines passed on, whole or not")
    axes.set(xscale="log", yscale="log", xlabel="users (all sending)", ylabel="deliveries per second",
             title="Throughput against users")
    axes.legend(fontsize=8)
    return figure


def _with_relayed(runs: list[dict]) -> list[dict]:
    return [{**run, "relayed_per_s": (run["delivered"] + run["garbled"]) / run["duration_s"] if run["duration_s"] else 0}
            for run in runs]


def latency_vs_load(latency: dict):
    """p50, p99 and p99.9 latency against offered load, for both servers."""
    figure = _figure()
    axes = _axes(figure, 1, 1, 1)
    runs = latency["runs"]
    for server in ("ours", "naive"):
        for quantile, style in (("p50", ":"), ("p99", "-"), ("p99.9", "--")):
            xs, ys = _points(runs, server, "offered_per_s", f"latency_ms.{quantile}")
            axes.plot(xs, ys, style, marker="o", markersize=3, color=COLORS[server], label=f"{LABELS[server]} {quantile}")
    users = runs[0]["users"]
    axes.set(xscale="log", yscale="log", xlabel="offered load (messages per second, all users)",
             ylabel="latency (ms)", title=f"Latency against offered load, {users} users")
    axes.legend(fontsize=7, ncol=2)
    return figure


def latency_cdf(latency: dict, offered_per_s: float = 500):
    """The distribution of latencies at one load: the fraction of messages faster than x."""
    figure = _figure()
    axes = _axes(figure, 1, 1, 1)
    for server in ("ours", "naive"):
        samples = [value for run in matching(latency["runs"], server=server, offered_per_s=offered_per_s)
                   for value in run["latency_samples_ms"]]
        xs, ys = ecdf(samples)
        axes.step(xs, ys, where="post", color=COLORS[server], label=LABELS[server])
    axes.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of messages",
             title=f"Latency CDF at {offered_per_s:g} messages/s, {latency['runs'][0]['users']} users")
    axes.legend(fontsize=8, loc="lower right")
    return figure


def scaling_latency(scaling: dict):
    """p99 latency against users, each user sending one message per second."""
    figure = _figure()
    axes = _axes(figure, 1, 1, 1)
    for server in ("ours", "naive"):
        for quantile, style in (("p50", ":"), ("p99", "-")):
            xs, ys = _points(scaling["runs"], server, "users", f"latency_ms.{quantile}")
            axes.plot(xs, ys, style, marker="o", color=COLORS[server], label=f"{LABELS[server]} {quantile}")
    axes.set(xscale="log", yscale="log", xlabel="users (each sends 1 message/s)", ylabel="latency (ms)",
             title="Latency as users grow")
    axes.legend(fontsize=8)
    return figure


def nagle_effect(nagle: dict):
    """p50 and p99 with TCP_NODELAY on and off, for both servers."""
    figure = _figure()
    axes = _axes(figure, 1, 1, 1)
    runs = nagle["runs"]
    labels = [f"{'ours' if run['server'] == 'ours' else 'textbook'}\nNODELAY {'on' if run['server_options'].get('nodelay') else 'off'}"
              for run in runs]
    positions = range(len(runs))
    for offset, quantile, alpha in ((-0.2, "p50", 0.5), (0.2, "p99", 1.0)):
        axes.bar([p + offset for p in positions], [run["latency_ms"][quantile] for run in runs], width=0.4,
                 color=[COLORS[run["server"]] for run in runs], alpha=alpha, label=quantile)
    axes.set_xticks(list(positions), labels, fontsize=8)
    axes.set(yscale="log", ylabel="latency (ms)", title="Nagle's algorithm: TCP_NODELAY on and off")
    axes.legend(fontsize=8)
    return figure


def slow_consumer(slow: dict):
    """Others' p99 and losses, without and with one user that never reads."""
    figure = _figure(7.0, 3.6)
    left, right = _axes(figure, 1, 2, 1), _axes(figure, 1, 2, 2)
    runs = slow["runs"]
    names = [("ours", 0), ("ours", 1), ("naive", 0), ("naive", 1)]
    labels = [f"{'ours' if s == 'ours' else 'textbook'}\n{'stalled user' if k else 'baseline'}" for s, k in names]
    p99 = [median_of(runs, "latency_ms.p99", server=s, stalled_users=k) for s, k in names]
    lost = [median_of([{**r, "lost_share": r["lost"] / r["expected"]} for r in runs], "lost_share", server=s, stalled_users=k)
            for s, k in names]
    colors = [COLORS[s] for s, _ in names]
    left.bar(labels, p99, color=colors)
    left.set(ylabel="others' p99 latency (ms)", title="Latency of the others")
    right.bar(labels, [100 * share for share in lost], color=colors)
    right.set(ylabel="others' messages lost (%)", ylim=(0, 100), title="Messages the others lost")
    for axes in (left, right):
        axes.tick_params(axis="x", labelsize=8)
    return figure


def ours_vs_textbook(capacity: dict, latency: dict, slow: dict):
    """The three numbers that separate the designs, side by side."""
    figure = _figure(7.5, 3.2)
    cells = [
        ("deliveries/s, 50 users", lambda s: median_of(capacity["runs"], "deliveries_per_s", server=s, users=50), "log"),
        ("p99 ms at 500 msg/s", lambda s: median_of(latency["runs"], "latency_ms.p99", server=s, offered_per_s=500), "log"),
        ("% lost with a stalled user", lambda s: 100 * median_of(
            [{**r, "share": r["lost"] / r["expected"]} for r in slow["runs"]], "share", server=s, stalled_users=1), "linear"),
    ]
    for index, (title, value, scale) in enumerate(cells, start=1):
        axes = _axes(figure, 1, 3, index)
        values = [value("ours"), value("naive")]
        axes.bar(["ours", "textbook"], values, color=[OURS_COLOR, NAIVE_COLOR])
        axes.set(title=title, yscale=scale)
        axes.title.set_fontsize(9)
    return figure


def udp_vs_tcp(udp: dict):
    """Delivery ratio and p99 latency of TCP and UDP at the same load, under 0%, 1% and 10% loss."""
    figure = _figure(7.5, 3.4)
    left, right = _axes(figure, 1, 2, 1), _axes(figure, 1, 2, 2)
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
        right.bar_label(bars, [f"{value:.3g}" if ok else "" for value, ok in zip(p99, measured)], fontsize=7)
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
    return figure


def soak_timeline(soak: dict):
    """The soak run over time: the server's memory and threads, and the steady users' p99 per window."""
    report = soak["soak"]
    figure = _figure(7.0, 3.4)
    left, right = _axes(figure, 1, 2, 1), _axes(figure, 1, 2, 2)
    times = [sample[0] for sample in report["rss_samples"]]
    left.plot(times, [sample[1] / 2**20 for sample in report["rss_samples"]], color=OURS_COLOR, label="RSS (MiB)")
    left.set(xlabel="time (s)", ylabel="server RSS (MiB)", ylim=(0, None), title="Server memory")
    threads = left.twinx()
    threads.plot(times, [sample[2] for sample in report["rss_samples"]], color=EXTRA_COLOR, linewidth=0.8)
    threads.set_ylabel("server threads", color=EXTRA_COLOR)
    windows = report["windows"]
    right.plot([w["t_s"] for w in windows], [w["latency_ms"]["p99"] for w in windows], "o-", color=OURS_COLOR, label="p99")
    right.plot([w["t_s"] for w in windows], [w["latency_ms"]["p50"] for w in windows], "o:", color=OURS_COLOR, label="p50")
    right.set(xlabel="time (s)", ylabel="steady users' latency (ms)", ylim=(0, None), title="Latency per window")
    right.legend(fontsize=8)
    return figure


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
