"""Plot helpers for the chapters: matplotlib for curves and tables (plotly 3D helpers live beside)."""
from __future__ import annotations

import matplotlib.pyplot as plt


def plot_history(history: list[dict], *, title: str | None = None, log_loss: bool = True):
    """Loss curves of one run: every training loss term per epoch (left) and the validation mean
    3D error in mm with the learning rate (right). ``history`` is TrainResult.history (or a results
    record's ``history``). Returns the matplotlib Figure."""
    if not history:
        raise ValueError("plot_history: the history is empty (no finished epoch)")
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for term in history[0]["train"]:
        ax_loss.plot(epochs, [h["train"][term] for h in history], marker="o", ms=3,
                     lw=2 if term == "total" else 1, label=term)
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="training loss terms")
    if log_loss and all(h["train"][t] > 0 for h in history for t in h["train"]):
        ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)

    val = [h["val"]["mean_error_mm"] if "val" in h else h["val_mean_error_mm"] for h in history]
    ax_val.plot(epochs, val, marker="o", ms=3, color="C3", label="validation")
    best = min(range(len(val)), key=val.__getitem__)
    ax_val.scatter([epochs[best]], [val[best]], s=60, facecolors="none", edgecolors="k",
                   label=f"best: {val[best]:.2f} mm (epoch {epochs[best]})", zorder=3)
    ax_val.set(xlabel="epoch", ylabel="mean 3D error (mm)", title="validation error")
    ax_lr = ax_val.twinx()
    ax_lr.plot(epochs, [h["lr"] for h in history], ls="--", color="0.5")
    ax_lr.set_ylabel("learning rate (dashed)", color="0.4")
    ax_val.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
