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

import base64
import functools
import html
import io
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


def beside_stored(name: str, draw, result: dict):
    """A figure of ``result`` drawn by ``draw``; a quick run's gets the stored full run's drawn beside it.

    In a quick run the figure of the report's full run (``report/results``)
    is shown next to the live one, each with a caption saying what it is; at
    full scale, or where nothing is stored, the one figure alone.
    """
    live = show(name, draw(result))
    stored = notebook_scale.stored_results(result["scenario"]) if result["mode"] == "quick" else None
    if stored is None:
        return live
    return Beside([(f"this quick run, {result['finished']}", live), (notebook_scale.stored_label(stored), draw(stored))])


class Beside:
    """Figures side by side, each over its caption: what Jupyter (and GitHub) show of it is HTML."""

    def __init__(self, panels: list[tuple[str, object]]):
        self.panels = panels

    def _repr_html_(self) -> str:
        cells = []
        for caption, drawing in self.panels:
            png = io.BytesIO()
            with style():
                drawing.savefig(png, format="png", dpi=80)
            image = base64.b64encode(png.getvalue()).decode("ascii")
            cells.append(f'<figure style="margin:0 1em 0 0;flex:1 1 0;min-width:20em">'
                         f'<img style="width:100%" src="data:image/png;base64,{image}">'
                         f"<figcaption><b>{html.escape(caption)}</b></figcaption></figure>")
        return f'<div style="display:flex;flex-wrap:wrap">{"".join(cells)}</div>'

    def __repr__(self) -> str:
        return "\n".join(f"[figure: {caption}]" for caption, _ in self.panels)
