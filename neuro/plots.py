"""matplotlib figures, written atomically as PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuro.atomic import atomic_path  # noqa: E402


def accuracy_vs_steps(curves: dict, path, ann_accuracy: float | None = None, title: str = "") -> None:
    """Accuracy (%) after each time step, one line per curve, the ANN as a dashed reference line."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, acc in curves.items():
        acc = np.asarray(acc)
        ax.plot(np.arange(1, len(acc) + 1), 100 * acc, label=name)
    if ann_accuracy is not None:
        ax.axhline(100 * ann_accuracy, color="k", ls="--", lw=1, label=f"ANN {100 * ann_accuracy:.2f} %")
    ax.set_xscale("log")
    ax.set_xlabel("time step")
    ax.set_ylabel("accuracy (%)")
    lo = min([100 * float(np.max(a)) for a in curves.values()] + [100 * (ann_accuracy or 1)]) - 5
    ax.set_ylim(max(lo, 0), 100)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
