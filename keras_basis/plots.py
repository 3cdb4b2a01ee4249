"""Figures of the command line and the demo (matplotlib, imported lazily).

``spectra_figure`` / ``plot_spectra`` draw each layer's singular-value
spectrum with its m marked (``keras-basis report --plot``);
``plot_accuracy_vs_size`` draws the demo's accuracy and latency against file
size. The
PNG files are written atomically with :mod:`keras_basis.fileio`.
"""

from __future__ import annotations

__all__ = ["plot_accuracy_vs_size", "plot_spectra", "spectra_figure"]

SPECTRA_MARK_COLORS = ("tab:red", "tab:purple")


def spectra_figure(entries, title):
    """A matplotlib ``Figure``: one panel per layer, spectrum and m marked.

    Args:
        entries: list of dicts with ``name``, ``c``, ``n``, ``kernel``
            (``(kh, kw)``), ``s``, ``sv`` (descending singular values),
            ``marks`` (list of ``(m, label)``) and ``source`` (what the
            spectrum is of), as ``keras_basis.transform.spectra`` returns.
        title: the figure's title prefix (e.g. the model file's name).

    Returns:
        ``matplotlib.figure.Figure``: at most 3 panels a row, 420 x 290 pixels
        each (plus 50 for the title); each mark ``m`` is a dashed vertical line
        at ``m + 0.5`` whose label gives the energy it keeps.

    Example:

    >>> fig = spectra_figure(keras_basis.transform.spectra(model), "model.keras")
    """
    import math

    import numpy as np
    from matplotlib.figure import Figure

    cols = min(3, len(entries))
    rows = math.ceil(len(entries) / cols)
    fig = Figure(figsize=(4.2 * cols, 2.9 * rows + 0.5), dpi=100)
    for i, e in enumerate(entries):
        ax = fig.add_subplot(rows, cols, i + 1)
        sv = np.asarray(e["sv"], dtype="float64")
        top = sv[0] if len(sv) and sv[0] > 0 else 1.0
        vals = np.maximum(sv / top, 1e-7)
        ax.semilogy(np.arange(1, len(sv) + 1), vals, ".-", lw=1, ms=3, color="tab:blue")
        energy = sv ** 2
        total = max(energy.sum(), 1e-30)
        for (m, tag), color in zip(e["marks"], SPECTRA_MARK_COLORS):
            kept = energy[:m].sum() / total
            ax.axvline(m + 0.5, color=color, ls="--", lw=1,
                       label=f"m{tag}={m}: keeps {kept:.1%} of the energy")
        kh, kw = e["kernel"]
        ax.set_title(
            f"{e['name']}  c={e['c']} n={e['n']} {kh}x{kw} s={e['s']}", fontsize=9
        )
        ax.set_xlabel(f"index (split matrix {e['c'] // e['s'] * kh * kw} x {e['n'] * e['s']})",
                      fontsize=8)
        ax.set_ylabel(f"sigma / sigma_1 ({e['source']})", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: singular values of each layer's split matrix", fontsize=11)
    fig.tight_layout()
    return fig


def plot_spectra(entries, path, title):
    """Save :func:`spectra_figure` of ``entries`` as a PNG at ``path``; returns the path."""
    from keras_basis import fileio

    fig = spectra_figure(entries, title)
    return fileio.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def plot_accuracy_vs_size(rows, path, title="digits CNN"):
    """Save TFLite accuracy and latency against file size (one line per format) as PNG.

    Two panels sharing the size axis: test accuracy (left) and batch-1
    latency (right), so that a smaller file that runs slower shows.

    Args:
        rows: dicts with ``model``, ``format`` (``"float32"`` / ``"int8"``),
            ``file_bytes``, ``acc_tflite`` and ``latency_ms`` (the demo's
            result rows).
        path: the PNG file to write (atomically).
        title: the title prefix.

    Returns:
        ``pathlib.Path`` of the written file.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from keras_basis import fileio

    fig = Figure(figsize=(11.0, 4.4), dpi=120)
    panels = (("acc_tflite", "test accuracy (TFLite)", "accuracy vs size", "lower right"),
              ("latency_ms", "batch-1 latency (ms, TFLite)", "latency vs size", "upper left"))
    for k, (key, ylabel, what, where) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        for fmt, marker in (("float32", "o"), ("int8", "s")):
            pts = [r for r in rows if r["format"] == fmt]
            if not pts:
                continue
            pts.sort(key=lambda r: r["file_bytes"])
            ax.plot([r["file_bytes"] / 1024 for r in pts], [r[key] for r in pts],
                    marker=marker, label=f"TFLite {fmt}")
            for r in pts:
                ax.annotate(r["model"], (r["file_bytes"] / 1024, r[key]),
                            textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        # minor ticks: label only 2, 3 and 5 x 10^k, so that labels never collide
        ax.xaxis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else "")
        )
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("file size (KiB, log scale)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {what}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc=where)
    fig.tight_layout()
    return fileio.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
