"""How every figure is made and saved, so that it is the same, byte for byte, wherever it is drawn.

The same data gives the same bytes, whoever draws it (``python -m chat
report``, a notebook through :func:`show`, a test):

- every figure is made, and saved, in matplotlib's default style plus
  ``STYLE`` (:func:`style`), so a notebook's rcParams, a style sheet or a
  ``matplotlibrc`` change nothing;
- :func:`save` writes a fixed ``svg.hashsalt`` and no date (the SVG names
  the matplotlib version that drew it; a PNG names none);
- lines are not simplified (``path.simplify``): simplifying a long line picks
  its vertices by comparisons on the last bits of their screen coordinates,
  and those bits can differ between CPUs (numpy's ``log10``, which a log axis
  uses, has an AVX-512 version), which moved three points of the latency CDF
  when it was redrawn on another machine.  The CDF is drawn through at most
  :data:`chat.reporting.plots.CDF_POINTS` of its samples instead of all of them.

Save a figure before showing it: drawing it first at another resolution moves
its constrained layout by the last bit of a float, which shows in the SVG.
"""

from __future__ import annotations

import functools
from pathlib import Path

from chat.lab import scale as notebook_scale

STYLE = {
    "svg.hashsalt": "chat-lab",  # SVG ids depend on it; fixed, they don't change from run to run
    "svg.fonttype": "path",
    "path.simplify": False,  # see the module docstring: simplification depends on the CPU's last bits
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def style():
    """A context with matplotlib's defaults plus ``STYLE``, whatever the caller's rcParams."""
    import matplotlib.style

    return matplotlib.style.context(["default", STYLE])


def styled(draw):
    """Make a figure function draw everything in :func:`style`."""
    @functools.wraps(draw)
    def styled(*args, **kwargs):
        with style():
            return draw(*args, **kwargs)
    return styled


def new_figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(figure, path: Path, dpi: int = 110) -> Path:
    """Write ``figure`` reproducibly (SVG or PNG by the file's suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Date": None} if path.suffix == ".svg" else {"Software": None}
    with style():
        figure.savefig(path, dpi=dpi, metadata=metadata)
    return path


def show(name: str, drawing):
    """What a notebook shows: the drawing; at full scale it is also saved as ``report/figures/NAME.svg``."""
    if notebook_scale.scale() == "full" and notebook_scale.REPORT_DIR.is_dir():
        save(drawing, notebook_scale.REPORT_DIR / "figures" / f"{name}.svg")
    return drawing
