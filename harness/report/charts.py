"""The report's charts: a handful of small matplotlib figures, as PNG data URIs.

Each function takes plain data from the report's view (numbers and names,
never raw job files) and returns ``data:image/png;base64,...`` for an
``<img>``, or None when there is nothing to draw. Figures are drawn with the
Agg canvas directly (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``):
explicit, no display, no pyplot global state, safe in a pytest process.
Kept cheap on purpose: few axes, fixed layout, low DPI.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from harness.report import labels as labels_for_charts

DPI = 80
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd")
ENSEMBLE_COLOUR = "#222222"


def colours(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per backend, by its position in the run."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, alpha=0.3)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=8)
        ax.locator_params(nbins=5)  # fewer ticks: tick labels are most of a figure's drawing time
    return fig, axes


def _uri(fig: Figure, bottom: float = 0.18, left: float = 0.1, right: float = 0.98,
         top: float = 0.88, wspace: float = 0.3) -> str:
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top, wspace=wspace)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def accuracy(members: Mapping[str, float], ensembles: Mapping[str, float],
             colour: Mapping[str, str], highlight: str | None = None) -> str | None:
    """Test accuracy per backend (coloured) and per ensemble variant (dark), best member marked."""
    if not members:
        return None
    names = list(members) + list(ensembles)
    values = [members[n] for n in members] + [ensembles[n] for n in ensembles]
    fig, (ax,) = _figure(7.5, 0.32 * len(names) + 1.0)
    bar_colours = [colour.get(n, "#888888") for n in members] + [
        ENSEMBLE_COLOUR if n == highlight else "#777777" for n in ensembles]
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=bar_colours, height=0.7)
    ax.set_yticks(y, [*members, *(f"ensemble: {n}" for n in ensembles)])
    best = max(members.values())
    ax.axvline(best, color="#c44e52", linestyle="--", linewidth=1)
    for yy, value in zip(y, values, strict=True):
        ax.text(value, yy, f" {100 * value:.1f}%", va="center", fontsize=7)
    ax.set_xlim(0, min(1.0, max(values) * 1.15 + 0.02))
    ax.set_xlabel("test accuracy (dashed: best backend)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    return _uri(fig, left=0.24, bottom=0.8 / (0.32 * len(names) + 1.0), top=0.97)


def learning_curves(histories: Mapping[str, list[dict]], colour: Mapping[str, str]) -> str | None:
    """Training (solid) and validation (dashed) accuracy per epoch, per backend."""
    histories = {n: h for n, h in histories.items() if h}
    if not histories:
        return None
    fig, (ax,) = _figure(5.6, 3.0)
    for name, rows in histories.items():
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
        ax.plot(epochs, [r.get("accuracy") for r in rows], color=colour.get(name), marker="o",
                markersize=3, label=name)
        if any(r.get("val_accuracy") is not None for r in rows):
            ax.plot(epochs, [r.get("val_accuracy") for r in rows], color=colour.get(name),
                    linestyle="--", linewidth=1)
    ax.set_title("learning curves: accuracy (dashed: validation)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, frameon=False)
    return _uri(fig, left=0.1)


def speed(epoch_seconds: Mapping[str, list[float]], train_rate: Mapping[str, float | None],
          inference_rate: Mapping[str, float | None], colour: Mapping[str, str]) -> str | None:
    """Time per epoch, and training and inference throughput, per backend."""
    names = [n for n in train_rate if train_rate.get(n) or inference_rate.get(n)]
    if not names:
        return None
    fig, (epoch_ax, rate_ax) = _figure(9, 2.9, 2)
    for name, seconds in epoch_seconds.items():
        if seconds:
            epoch_ax.plot(range(1, len(seconds) + 1), seconds, color=colour.get(name), marker="o",
                          markersize=3, label=name)
    epoch_ax.set_title("seconds per epoch")
    epoch_ax.set_xlabel("epoch")
    epoch_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    epoch_ax.set_ylim(bottom=0)
    if any(epoch_seconds.values()):
        epoch_ax.legend(fontsize=7, frameon=False)
    x = np.arange(len(names))
    bar_colours = [colour.get(n) for n in names]
    rate_ax.bar(x - 0.2, [train_rate.get(n) or 0 for n in names], width=0.4, color=bar_colours,
                label="training (steady)")
    rate_ax.bar(x + 0.2, [inference_rate.get(n) or 0 for n in names], width=0.4, color=bar_colours,
                alpha=0.45, hatch="//", label="inference")
    rate_ax.set_xticks(x, names, rotation=20, ha="right")
    rate_ax.set_title("throughput, images/s")
    rate_ax.grid(False, axis="x")
    rate_ax.legend(fontsize=7, frameon=False)
    return _uri(fig, left=0.06, bottom=0.25, wspace=0.2)


def reliability(panels: Sequence[tuple[str, dict]]) -> str | None:
    """Reliability diagrams side by side: accuracy against confidence per bin, with the ECE.

    ``panels`` are ``(title, bins)`` with ``bins`` as ``ReliabilityBins.to_dict()``.
    """
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, axes = _figure(3.1 * len(panels) + 0.4, 3.0, len(panels))
    for ax, (title, bins) in zip(axes, panels, strict=True):
        edges = np.asarray(bins["edges"])
        accuracy = np.array([np.nan if v is None else v for v in bins["accuracy"]], dtype=float)
        confidence = np.array([np.nan if v is None else v for v in bins["mean_confidence"]],
                              dtype=float)
        accuracy, confidence = np.nan_to_num(accuracy), np.nan_to_num(confidence)
        ax.stairs(accuracy, edges, fill=True, color="#4c72b0", label="accuracy")
        ax.stairs(np.maximum(confidence, accuracy), edges, baseline=np.minimum(confidence, accuracy),
                  fill=True, color="#c44e52", alpha=0.35, label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="#555555", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("confidence")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, frameon=False, loc="upper left")
    return _uri(fig, left=0.08, bottom=0.16, top=0.9, wspace=0.25)


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> str | None:
    """A confusion matrix as a heat map (share of each true class), rows the true class.

    Counts are written on the diagonal and on each row's commonest mistake.
    """
    counts = np.asarray(matrix, dtype=float)
    if counts.size == 0:
        return None
    k = counts.shape[0]
    labels, family = labels_for_charts.drawable(
        [str(c) for c in classes] if len(classes) == k else [str(i) for i in range(k)])
    fig, (ax,) = _figure(5.2, 4.6)
    ax.grid(False)
    row_share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    off_diagonal = np.where(np.eye(k, dtype=bool), -1, counts)
    marked = [(i, i) for i in range(k)] + [(i, int(off_diagonal[i].argmax())) for i in range(k)
                                           if off_diagonal[i].max() > 0]
    for i, j in marked:  # the hits and each class's commonest mistake: few texts, quick to draw
        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                color="white" if row_share[i, j] > 0.6 else "#222222")
    text = {"fontfamily": family, "parse_math": False}  # a class name is never mathtext
    ax.set_xticks(range(k), labels, rotation=45, ha="right", **text)
    ax.set_yticks(range(k), labels, **text)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _uri(fig, left=0.2, bottom=0.22, top=0.93)


def history(runs: Sequence[str], accuracy: Mapping[str, list[float | None]],
            throughput: Mapping[str, list[float | None]], colour: Mapping[str, str]) -> str | None:
    """Test accuracy and training throughput per backend (and ensemble accuracy) over runs."""
    if len(runs) < 2:
        return None
    if not any(v is not None for values in [*accuracy.values(), *throughput.values()] for v in values):
        return None  # nothing measured in any run (only training selected, say): no empty chart
    fig, (acc_ax, rate_ax) = _figure(9, 2.9, 2)
    x = np.arange(len(runs))
    names, family = labels_for_charts.drawable([str(r)[-14:] for r in runs])  # ids from a hand-edited history too
    for ax, series, title in ((acc_ax, accuracy, "test accuracy"),
                              (rate_ax, throughput, "training images/s (steady)")):
        for name, values in series.items():
            ys = np.array([np.nan if v is None else v for v in values], dtype=float)
            if np.all(np.isnan(ys)):
                continue
            ensemble = name.startswith("ensemble")
            ax.plot(x, ys, marker="o", markersize=3, label=name,
                    color=ENSEMBLE_COLOUR if ensemble else colour.get(name, "#888888"),
                    linewidth=2 if ensemble else 1)
        ax.set_title(title)
        step = max(1, len(runs) // 8)
        ax.set_xticks(x[::step], names[::step], rotation=30, ha="right", fontfamily=family, parse_math=False)
    for ax in (acc_ax, rate_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
            break
    return _uri(fig, left=0.06, bottom=0.3)


def _plain_log(axis: Any) -> None:
    """A log scale labelled 1, 2, 5, 10 ... in plain numbers (no 10^x mathtext)."""
    axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


MARK_STYLES = {"p50": ":", "p90": "--", "p99": "-.", "p90 early stopping": "-"}


def serving_latency(latency: Mapping[str, dict], colour: Mapping[str, str]) -> str | None:
    """SingleStream latency per backend: one panel each, a histogram over log-spaced bins with its
    p50, p90 and p99 and LoadGen's early-stopping p90 marked."""
    names = [n for n, entry in latency.items() if entry.get("histogram", {}).get("counts")]
    if not names:
        return None
    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    fig = Figure(figsize=(3.3 * columns, 2.3 * rows + 0.3), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes[:len(names)], names, strict=True):
        hist = latency[name]["histogram"]
        edges = np.asarray(hist["edges_ms"], dtype=float)
        ax.stairs(hist["counts"], edges, fill=True, color=colour.get(name, "#888888"), alpha=0.8)
        if edges[-1] > edges[0] > 0:
            _plain_log(ax.xaxis)
        for label, value in (latency[name].get("marks") or {}).items():
            if value:
                ax.axvline(value, color="#222222", linestyle=MARK_STYLES.get(label, "--"), linewidth=1, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("ms per query", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, frameon=False)
    return _uri(fig, left=0.06, bottom=0.22 / rows + 0.08, top=0.9, wspace=0.25)


def offline_throughput(offline: Mapping[str, list], colour: Mapping[str, str]) -> str | None:
    """Offline images/s against batch size per backend, with each 95% interval."""
    series = {n: points for n, points in offline.items() if points}
    if not series:
        return None
    fig, (ax,) = _figure(5.6, 3.0)
    for name, points in series.items():
        batch = [p[0] for p in points]
        value = np.array([p[1] for p in points], dtype=float)
        low = np.array([p[2] if p[2] is not None else p[1] for p in points], dtype=float)
        high = np.array([p[3] if p[3] is not None else p[1] for p in points], dtype=float)
        ax.errorbar(batch, value, yerr=[value - low, high - value], color=colour.get(name), marker="o",
                    markersize=3, capsize=2, label=name)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("batch size")
    ax.set_title("Offline: images/s by batch size")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    return _uri(fig, left=0.12)


def server_p99(server: Mapping[str, list], bound_ms: float | None, colour: Mapping[str, str]) -> str | None:
    """Server p99 latency (queueing included) against the offered rate per backend; hollow markers for
    rates that failed the bound, the bound dashed."""
    series = {n: points for n, points in server.items() if points}
    if not series:
        return None
    fig, (ax,) = _figure(5.6, 3.0)
    for name, points in series.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], color=colour.get(name), linewidth=1, label=name)
        for offered, p99, passed, _ in points:
            ax.plot(offered, p99, marker="o", markersize=4, color=colour.get(name),
                    markerfacecolor=colour.get(name) if passed else "none")
    if bound_ms:
        ax.axhline(bound_ms, color="#c44e52", linestyle="--", linewidth=1, label="bound")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("offered rate, queries/s")
    ax.set_ylabel("p99 ms")
    ax.set_title("Server: p99 by offered rate (hollow: over the bound)")
    ax.legend(fontsize=7, frameon=False)
    return _uri(fig, left=0.13)
