"""The report's figures, drawn with matplotlib's Agg renderer and returned as PNG bytes.

Each function takes normalised analysis data (the sections' normalisers, :mod:`advlab.report.sections`) and model
colors, builds a ``matplotlib.figure.Figure`` directly (no pyplot: no global figure state, safe in any thread, no
display needed) and returns :func:`png_bytes` of it. Accuracies are shown in percent; ε and norms in [0, 1] pixel units.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from advlab.formatting import epsilon, norm_name

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

DPI = 120
STYLE: dict[RcKeyType, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e3e6ea", "grid.linewidth": 0.8, "axes.edgecolor": "#9aa3ad", "axes.titleweight": "bold",
    "font.family": "DejaVu Sans", "figure.facecolor": "white", "axes.axisbelow": True,
}
CLEAN_COLOR = "#7f8c8d"
ADVERSARIAL_COLOR = "#c0392b"
CORRECT_COLOR = "#1e8449"


@dataclass(frozen=True)
class Series:
    """One line of a plot: ``x``, ``y`` and an optional ``y_std`` (drawn as a ± band), with its label and color."""

    label: str
    color: str
    x: Sequence[float]
    y: Sequence[float]
    y_std: Sequence[float] | None = None


def new_figure(width: float, height: float, layout: Literal["constrained"] | None = "constrained") -> Figure:
    """A white figure in the report's style; ``layout=None`` for grids of images (constrained layout is slow there)."""
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes (white background, tight bounding box)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _axes(figure: Figure, *args: Any, **kwargs: Any):
    with matplotlib.rc_context(STYLE):
        return figure.subplots(*args, **kwargs)


def line_plot(series: Sequence[Series], *, title: str, x_label: str, y_label: str = "accuracy (%)",
              percent: bool = True, log_x: bool = False, x_ticks: Sequence[float] | None = None,
              x_tick_labels: Sequence[str] | None = None) -> bytes:
    """Lines with markers, one per series; a shaded ±1 std band where a series has a nonzero std."""
    figure = new_figure(5.6, 3.4)
    with matplotlib.rc_context(STYLE):
        ax = _axes(figure)
        scale = 100.0 if percent else 1.0
        for line in series:
            x, y = np.asarray(line.x, float), np.asarray(line.y, float) * scale
            ax.plot(x, y, marker="o", markersize=4, linewidth=1.8, color=line.color, label=line.label)
            if line.y_std is not None and np.any(np.asarray(line.y_std, float) > 0):
                std = np.asarray(line.y_std, float) * scale
                ax.fill_between(x, y - std, y + std, color=line.color, alpha=0.18, linewidth=0,
                                label=f"{line.label} ± std")
        if log_x:
            xs = sorted({float(v) for line in series for v in line.x})
            if xs[0] > 0:
                ax.set_xscale("log")
                if x_ticks is None and len(xs) <= 8:  # label the measured values, not powers of ten
                    x_ticks = xs
                    ax.minorticks_off()
            else:  # a zero (e.g. σ = 0) has no logarithm: linear up to the smallest positive value
                ax.set_xscale("symlog", linthresh=_smallest_positive(series))
        if x_ticks is not None:
            ax.set_xticks(list(x_ticks), list(x_tick_labels or [f"{v:g}" for v in x_ticks]))
        if percent:
            ax.set_ylim(-2, 102)
        ax.set_title(title, loc="left")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.legend(frameon=False, loc="best")
    return png_bytes(figure)


def _smallest_positive(series: Sequence[Series]) -> float:
    values = [float(v) for line in series for v in line.x if float(v) > 0]
    return min(values) if values else 1.0


def robustness_curve(series: Sequence[Series], *, attack_title: str, norm: str | None) -> bytes:
    """Robust accuracy vs ε for one attack, all models on one plot; ε tick labels as 8/255 where exact."""
    epsilons = sorted({float(v) for line in series for v in line.x})
    ticks = epsilons if len(epsilons) <= 8 else None
    labels = [epsilon(v, norm) for v in epsilons] if ticks else None
    return line_plot(series, title=f"Robust accuracy vs ε — {attack_title}",
                     x_label=f"ε ({norm_name(norm) or 'norm'}, [0, 1] pixel units)", x_ticks=ticks,
                     x_tick_labels=labels)


def norm_histograms(panels: Sequence[tuple[str, str, dict[str, Any]]]) -> bytes:
    """L0/L1/L2/L∞ histograms of perturbation norms; ``panels`` = (label, color, histograms) per model."""
    norms = [n for n in ("l0", "l1", "l2", "linf") if any(n in hist for _, _, hist in panels)]
    figure = new_figure(2.6 * max(1, len(norms)), 2.6)
    with matplotlib.rc_context(STYLE):
        axes = np.atleast_1d(_axes(figure, 1, max(1, len(norms))))
        for ax, norm in zip(axes, norms):
            for label, color, histograms in panels:
                if norm not in histograms:
                    continue
                edges, counts = np.asarray(histograms[norm]["edges"]), np.asarray(histograms[norm]["counts"], float)
                ax.stairs(counts, edges, color=color, fill=True, alpha=0.25)
                ax.stairs(counts, edges, color=color, linewidth=1.4, label=label)
            ax.set_title(f"{norm_name(norm)} norm", loc="left")
            ax.set_xlabel("‖adv − x‖" if norm != "l0" else "changed entries")
        axes[0].set_ylabel("examples")
        axes[-1].legend(frameon=False)
    return png_bytes(figure)


def pixel_histograms(panels: Sequence[tuple[str, dict[str, Any]]]) -> bytes:
    """Clean vs adversarial pixel-value histograms, one panel per model (log scale: most pixels sit at 0 or 1)."""
    figure = new_figure(3.4 * len(panels), 2.7)
    with matplotlib.rc_context(STYLE):
        axes = np.atleast_1d(_axes(figure, 1, len(panels), sharey=True))
        for ax, (label, data) in zip(axes, panels):
            edges = np.asarray(data["edges"], float)
            ax.stairs(np.asarray(data["clean"], float) * 100, edges, color=CLEAN_COLOR, fill=True, alpha=0.35,
                      label="clean")
            ax.stairs(np.asarray(data["adversarial"], float) * 100, edges, color=ADVERSARIAL_COLOR, linewidth=1.5,
                      label="adversarial")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(label, loc="left")
            ax.set_xlabel("pixel value")
        axes[0].set_ylabel("share of pixels (%)")
        axes[0].legend(frameon=False)
    return png_bytes(figure)


def _to_hwc(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) for one channel or (H, W, 3)."""
    return image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)


def _mosaic(images: np.ndarray, gap: int = 2, fill: float = 1.0) -> np.ndarray:
    """(R, K, C, H, W) -> one (R·(H+gap), K·(W+gap)[, 3]) image with white gaps between the cells."""
    rows, cols, channels, height, width = images.shape
    shape = (rows * (height + gap) - gap, cols * (width + gap) - gap) + ((3,) if channels == 3 else ())
    mosaic = np.full(shape, fill, dtype=float)
    for i in range(rows):
        for j in range(cols):
            mosaic[i * (height + gap): i * (height + gap) + height,
                   j * (width + gap): j * (width + gap) + width] = _to_hwc(images[i, j])
    return mosaic


def _cell_ticks(ax: Any, count: int, size: int, gap: int, axis: str, labels: Sequence[str]) -> None:
    centres = [k * (size + gap) + size / 2 - 0.5 for k in range(count)]
    if axis == "x":
        ax.set_xticks(centres, labels)
    else:
        ax.set_yticks(centres, labels)


def image_grid(images: Any, classes: Sequence[str]) -> bytes:
    """The 10×10 average adversarial grid: row = source class, column = target class, diagonal (framed) = clean
    means."""
    array = np.clip(np.asarray(images, dtype=float), 0.0, 1.0)
    count, height, width, gap = array.shape[0], array.shape[3], array.shape[4], 2
    mosaic = _mosaic(array, gap)
    figure = new_figure(6.0, 6.2)
    with matplotlib.rc_context(STYLE):
        ax = _axes(figure)
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.grid(False)
        for k in range(count):
            ax.add_patch(Rectangle((k * (width + gap) - 1, k * (height + gap) - 1), width + 1, height + 1,
                                   fill=False, edgecolor="#E69F00", linewidth=1.6))
        # Room for the frames of the first and last diagonal cells, which reach one pixel outside the mosaic.
        ax.set_xlim(-1.5, mosaic.shape[1] + 0.5)
        ax.set_ylim(mosaic.shape[0] + 0.5, -1.5)
        _cell_ticks(ax, count, width, gap, "x", classes)
        _cell_ticks(ax, count, height, gap, "y", classes)
        ax.xaxis.set_ticks_position("top")
        ax.xaxis.set_label_position("top")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("target class →")
        ax.set_ylabel("← source class")
    return png_bytes(figure)


def success_heatmap(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *, title: str,
                    x_label: str, y_label: str, cmap: str = "viridis") -> bytes:
    """A K×K heatmap in percent with the value written in each cell (transfer matrix, targeted success)."""
    values = np.asarray(matrix, float) * 100
    rows, cols = values.shape
    many = cols > 5  # 10×10 class grids: whole percents in smaller type so every cell stays legible
    width = max(3.4, (0.5 if many else 0.8) * cols + 1.8)
    figure = new_figure(width, max(2.6, (0.45 if many else 0.6) * rows + 1.2))
    with matplotlib.rc_context(STYLE):
        ax = _axes(figure)
        image = ax.imshow(values, cmap=cmap, vmin=0, vmax=100, aspect="auto")
        ax.grid(False)
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, f"{values[i, j]:.0f}" if many else f"{values[i, j]:.1f}", ha="center", va="center",
                        fontsize=7 if many else 8.5, color="white" if values[i, j] < 60 else "black")
        slanted = len(col_labels) > 4 and max(len(label) for label in col_labels) > 3  # long model names
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=30 if slanted else 0,
                      ha="right" if slanted else "center")
        ax.set_yticks(range(len(row_labels)), row_labels)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left")
        figure.colorbar(image, ax=ax, shrink=0.85, label="%")
    return png_bytes(figure)


def perturbation_images(images: Any, classes: Sequence[str], counts: Sequence[int] | None, *, title: str) -> bytes:
    """Mean perturbation per source class: gray-scale as a diverging map (red +, blue −), color as 0.5 + δ."""
    array = np.asarray(images, dtype=float)
    count = array.shape[0]
    bound = float(np.abs(array).max()) or 1.0
    figure = new_figure(max(4.0, 1.05 * count), 1.75)
    with matplotlib.rc_context(STYLE):
        axes = np.atleast_1d(_axes(figure, 1, count))
        for k, ax in enumerate(axes):
            if array.shape[1] == 1:
                shown = ax.imshow(array[k, 0], cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
            else:
                ax.imshow(np.clip(0.5 + _to_hwc(array[k]) / (2 * bound), 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            suffix = f"\nn={counts[k]}" if counts is not None else ""
            ax.set_title(f"{classes[k]}{suffix}", fontsize=8, fontweight="normal")
        if array.shape[1] == 1:
            figure.colorbar(shown, ax=list(axes), shrink=0.8, label="mean δ")
        figure.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    return png_bytes(figure)


def adversarial_examples(data: dict[str, Any], *, title: str) -> bytes:
    """Rows: clean, then each ε; columns: examples. Each cell: predicted label and confidence, green if right."""
    classes, labels = data["classes"], data["labels"]
    rows = [("clean", data["clean"])] + [(f"ε={epsilon(row['eps'], row.get('norm'))}", row) for row in data["rows"]]
    count = len(labels)
    width, height = max(4.0, 1.0 * count + 0.7), 1.15 * len(rows) + 0.5
    figure = new_figure(width, height, layout=None)
    figure.subplots_adjust(left=0.7 / width, right=0.99, bottom=0.1 / height, top=1 - 0.55 / height, wspace=0.12,
                           hspace=0.35)
    with matplotlib.rc_context(STYLE):
        axes = np.asarray(_axes(figure, len(rows), count, squeeze=False))
        for r, (row_name, row) in enumerate(rows):
            images = np.clip(np.asarray(row["images"], float), 0, 1)
            for c in range(count):
                ax = axes[r, c]
                ax.imshow(_to_hwc(images[c]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                pred = int(row["pred"][c])
                right = pred == int(labels[c])
                name = classes[pred] if pred < len(classes) else str(pred)
                ax.set_title(f"{name} · {100 * float(row['confidence'][c]):.0f}%", fontsize=7, fontweight="normal",
                             color=CORRECT_COLOR if right else ADVERSARIAL_COLOR, pad=2)
                for spine in ax.spines.values():
                    spine.set_edgecolor(CORRECT_COLOR if right else ADVERSARIAL_COLOR)
                    spine.set_visible(True)
                    spine.set_linewidth(1.2)
                if c == 0:
                    ax.set_ylabel(row_name, fontsize=8)
        figure.suptitle(title, x=0.01, y=1 - 0.08 / height, ha="left", va="top", fontsize=10, fontweight="bold")
    return png_bytes(figure)


def gradient_histograms(panels: Sequence[tuple[str, dict[str, Any]]]) -> bytes:
    """Input-gradient norms of correctly vs incorrectly classified points, one panel per model, log x."""
    figure = new_figure(3.4 * len(panels), 2.7)
    with matplotlib.rc_context(STYLE):
        axes = np.atleast_1d(_axes(figure, 1, len(panels)))
        for ax, (label, data) in zip(axes, panels):
            histogram = data["histogram"]
            edges = np.asarray(histogram["edges"], float)
            correct = np.asarray(histogram["correct"], float)
            incorrect = np.asarray(histogram["incorrect"], float)
            # Shares within each group: far fewer points are misclassified, raw counts would hide them.
            ax.stairs(correct / max(correct.sum(), 1) * 100, edges, color=CORRECT_COLOR, fill=True, alpha=0.3,
                      label=f"correct (n={int(correct.sum())})")
            ax.stairs(incorrect / max(incorrect.sum(), 1) * 100, edges, color=ADVERSARIAL_COLOR, linewidth=1.6,
                      label=f"incorrect (n={int(incorrect.sum())})")
            if histogram.get("log", True):
                ax.set_xscale("log")
            ax.set_title(label, loc="left")
            ax.set_xlabel(f"‖∇ₓ loss‖ ({norm_name(data['norm'])})")
        axes[0].set_ylabel("share of group (%)")
        for ax in axes:
            ax.legend(frameon=False, fontsize=7)
    return png_bytes(figure)


def is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"

