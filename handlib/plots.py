"""Plot helpers for the chapters: matplotlib for curves and bar charts, plotly for 3D hands.

* :func:`plot_history`: one run's loss terms and validation error per epoch.
* :func:`learning_curves`: validation error against training samples seen, many runs.
* :func:`success_curves`: the evaluation protocol's success-rate curves, mean over seeds with the
  min–max band.
* :func:`per_joint_errors`: per-joint mean error bars, plus the overall mean.
* :func:`skeleton_3d` / :func:`skeletons_3d`: interactive 3D skeletons (plotly), one scene per frame.
* :func:`joint_groups`: a 2D skeleton with each joint coloured by the group it belongs to.

Series are told apart by :func:`series_styles` (distinct colour, then line style), so a figure
with a dozen variants never draws two of them alike. The matplotlib helpers draw into ``ax`` when
given (and return its figure) or into a new figure; all return the figure.
"""
from __future__ import annotations

import math
import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_hex
from matplotlib.ticker import MaxNLocator

from handlib.joints import JointConvention, get_convention
from handlib.metrics import DEFAULT_THRESHOLDS_MM, SUCCESS_VARIANTS, per_joint_error, success_curve

# One colour map for depth crops in every chapter (near = dark, far = light; background at +1).
DEPTH_CMAP = "viridis"
_LINESTYLES = ("-", "--", ":", "-.")
_HATCHES = ("", "//", "..", "xx")


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


# --- styles -------------------------------------------------------------------------------------

def series_styles(n: int) -> list[dict]:
    """``n`` matplotlib styles ``{"color": hex, "linestyle": ...}``, no two alike (up to 80).

    Up to 10 series get matplotlib's tab10 colours (C0..C9); up to 20 add tab20's light shades;
    beyond 20 the 20 colours repeat with dashed, dotted and dash-dot lines."""
    if n > 20 * len(_LINESTYLES):
        raise ValueError(f"series_styles: {n} series; at most {20 * len(_LINESTYLES)} can be told apart")
    tab20 = plt.get_cmap("tab20").colors
    colours = [to_hex(c) for c in tab20[0::2] + tab20[1::2]]     # tab10's colours first, then their light shades
    return [{"color": colours[i % 20], "linestyle": _LINESTYLES[i // 20]} for i in range(n)]


def _figure_axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def _as_runs(value, label) -> list[torch.Tensor]:
    """One label's errors -> a list of (F, J) float64 tensors, one per seed.

    Accepts an (F, J) tensor/array, an (S, F, J) stack, or a list of (F, J) tensors/arrays."""
    runs = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for run in runs:
        t = torch.as_tensor(np.asarray(run.detach().cpu()) if isinstance(run, torch.Tensor) else np.asarray(run),
                            dtype=torch.float64)
        if t.dim() == 3:
            out.extend(t.unbind(0))
        elif t.dim() == 2:
            out.append(t)
        else:
            raise ValueError(f"{label!r}: expected (frames, joints) errors per seed, got shape {tuple(t.shape)}")
    if not out:
        raise ValueError(f"{label!r}: no errors given")
    return out


# --- success curves and per-joint errors --------------------------------------------------------

def success_curves(errors: Mapping[str, object], thresholds=DEFAULT_THRESHOLDS_MM,
                   variant: str = "max-frame", ax=None, *, title: str | None = None):
    """Success-rate curves (awesome-hand-pose-estimation, ``evaluation/src/compute_error.py``):
    for each label, the percentage of frames (``max-frame``: worst joint; ``mean-frame``: average
    joint) or of (frame, joint) pairs (``joint``) with error <= each threshold in mm, via :func:`handlib.metrics.success_curve`.

    ``errors`` maps a label to its (F, J) errors in mm, or to one such tensor per seed (a list or
    an (S, F, J) stack): the line is the mean over seeds of the per-seed curves and the shaded band
    spans their minimum to maximum. Returns the figure."""
    if variant not in SUCCESS_VARIANTS:
        raise ValueError(f"unknown success-curve variant {variant!r}; expected one of {SUCCESS_VARIANTS}")
    fig, ax = _figure_axes(ax, (6, 4.2))
    t = torch.as_tensor(thresholds, dtype=torch.float64)
    for (label, value), style in zip(errors.items(), series_styles(len(errors))):
        curves = 100 * torch.stack([success_curve(e, t, variant) for e in _as_runs(value, label)])  # (S, T)
        ax.plot(t.numpy(), curves.mean(0).numpy(), label=label, lw=1.5, **style)
        if len(curves) > 1:
            ax.fill_between(t.numpy(), curves.min(0).values.numpy(), curves.max(0).values.numpy(),
                            color=style["color"], alpha=0.15, lw=0)
    what = {"max-frame": "max joint error", "mean-frame": "mean joint error", "joint": "joint error"}[variant]
    share = "joints" if variant == "joint" else "frames"
    ax.set(xlabel=f"{what} threshold (mm)", ylabel=f"{share} within threshold (%)",
           title=title or f"{variant} success rate", xlim=(float(t[0]), float(t[-1])), ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=1 if len(errors) <= 8 else 2)
    return fig


def per_joint_errors(errors: Mapping[str, object], joint_names: Sequence[str], ax=None, *,
                     title: str | None = None):
    """Grouped bars of each joint's mean error in mm (mean over frames, :func:`handlib.metrics.
    per_joint_error`) per label, plus a last "Mean" group: the mean of the per-joint means, i.e. the
    reported mean 3D error. With several seeds per label the bar is the mean over seeds and the
    whisker spans the seeds' minimum to maximum. ``errors`` is as in :func:`success_curves`."""
    names = list(joint_names) + ["Mean"]
    fig, ax = _figure_axes(ax, (min(14.0, max(6.0, 0.12 * len(names) * (len(errors) + 1))), 4.2))
    x = np.arange(len(names))
    width = 0.8 / max(1, len(errors))
    for i, ((label, value), style) in enumerate(zip(errors.items(), series_styles(len(errors)))):
        per_seed = torch.stack([per_joint_error(e) for e in _as_runs(value, label)])     # (S, J)
        if per_seed.shape[1] != len(joint_names):
            raise ValueError(f"{label!r}: errors have {per_seed.shape[1]} joints, joint_names {len(joint_names)}")
        per_seed = torch.cat((per_seed, per_seed.mean(1, keepdim=True)), 1)             # (S, J + 1)
        mean = per_seed.mean(0)
        yerr = (torch.stack((mean - per_seed.min(0).values, per_seed.max(0).values - mean)).numpy()
                if len(per_seed) > 1 else None)
        ax.bar(x + (i - (len(errors) - 1) / 2) * width, mean.numpy(), width, color=style["color"],
               hatch=_HATCHES[_LINESTYLES.index(style["linestyle"])], label=label, yerr=yerr,
               error_kw={"lw": 0.6, "capsize": 0, "ecolor": "0.2"})
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set(ylabel="mean error (mm)", title=title or "per-joint error")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=1 if len(errors) <= 8 else 2)
    return fig


# --- paired effects -----------------------------------------------------------------------------

def paired_effects(effects, ax=None, *, title: str | None = None, datasets: Sequence[str] = ("NYU", "ICVL")):
    """A :func:`handlib.report.paired_effects` table as a picture: each effect's mean paired
    difference (mm) with its 95 % t interval, its seeds' own differences as dots, and the paper's
    differences (columns ``"paper NYU"`` ...) as markers. Negative = the first variant is better."""
    fig, ax = _figure_axes(ax, (6.5, 0.55 * len(effects) + 1.4))
    y = np.arange(len(effects))[::-1]
    ax.axvline(0, color="0.5", lw=0.8)
    ax.errorbar(effects["diff"], y, xerr=np.vstack([effects["diff"] - effects["ci_low"],
                                                      effects["ci_high"] - effects["diff"]]),
                fmt="o", color="C0", capsize=3, label="ours: mean, 95 % interval")
    for yi, seeds in zip(y, effects["per_seed"]):
        ax.plot(seeds, [yi - 0.15] * len(seeds), "|", color="C0", alpha=0.7, ms=8)
    for marker, dataset in zip(("D", "s", "^"), datasets):
        column = f"paper {dataset}"
        if column in effects and effects[column].notna().any():
            ax.plot(effects[column], y, marker, color="C3", mfc="none", label=f"paper, {dataset}")
    ax.set_yticks(y, list(effects.index), fontsize=9)
    ax.set(xlabel="paired difference, first minus second (mm)", title=title or "paired effects")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=9, loc="best")
    return fig


# --- learning curves ----------------------------------------------------------------------------

def _samples_per_epoch(record: Mapping) -> int | None:
    """Training samples per epoch of a results record: batch_size x steps per epoch, where the
    steps are ``steps_per_epoch`` (record or ``extra``) or ``train_size // batch_size`` (whole
    global batches only, as train.fit counts them); None when the record says neither."""
    batch = (record.get("recipe") or {}).get("batch_size")
    extra = record.get("extra") or {}
    steps = record.get("steps_per_epoch", extra.get("steps_per_epoch"))
    if steps is None and batch:
        size = record.get("train_size", extra.get("train_size"))
        steps = int(size) // int(batch) if size is not None else None
    return int(batch) * int(steps) if batch and steps else None


def _val_error(entry: Mapping) -> float:
    return float(entry["val"]["mean_error_mm"] if "val" in entry else entry["val_mean_error_mm"])


def _runs_by_group(runs, colour_by: str) -> dict[str, list[tuple[list, int | None]]]:
    """-> {group label: [(history, samples per epoch or None), ...]} in first-seen order."""
    def one(item):
        if isinstance(item, Mapping):
            if "history" not in item:
                raise ValueError("learning_curves: a record without 'history'")
            # A record's learning curve (validation at log-spaced points) when it has one, else its epochs.
            return item.get("curve") or item["history"], _samples_per_epoch(item)
        return list(item), None

    def items_of(value) -> list:
        """A dict value: one record, one history (a list of epoch dicts), or a list of either."""
        if isinstance(value, Mapping) or not value:
            return [value] if value else []
        first = value[0]
        is_history = isinstance(first, Mapping) and "history" not in first
        return [value] if is_history else list(value)

    groups: dict[str, list] = {}
    if isinstance(runs, Mapping):
        for label, value in runs.items():
            groups[str(label)] = [one(item) for item in items_of(value)]
    else:
        for i, item in enumerate(runs):
            label = str(item[colour_by]) if isinstance(item, Mapping) else f"run {i}"
            groups.setdefault(label, []).append(one(item))
    return groups


def learning_curves(runs, colour_by: str = "variant", ax=None, *, title: str | None = None,
                    budget: int | None = None):
    """Validation mean 3D error (mm) against training samples seen (log x axis) for many runs.

    ``runs`` is a list of results records (coloured by ``record[colour_by]``, one legend entry per
    value), a list of histories (one colour each), or a dict label -> record, history, or a list
    of them. A history entry needs ``epoch`` and ``val_mean_error_mm`` (or TrainResult's
    ``val["mean_error_mm"]``); its x is ``samples_seen`` when present, else epoch x samples per
    epoch (``recipe.batch_size`` x the record's ``steps_per_epoch``, or ``train_size //
    batch_size``). If any run's samples cannot be derived, every run is drawn against epochs on a
    linear axis, and the axis says so. ``budget`` (samples) marks a chosen training length with a
    dashed line. Returns the figure."""
    groups = _runs_by_group(runs, colour_by)
    if not groups:
        raise ValueError("learning_curves: no runs given")
    series = []        # (group, epochs, samples or None, errors)
    for label, items in groups.items():
        for history, per_epoch in items:
            if not history:
                continue
            epochs = np.array([h.get("epoch", np.nan) for h in history], dtype=float)
            seen = [h.get("samples_seen") for h in history]
            samples = (np.array(seen, dtype=float) if all(s is not None for s in seen)
                       else epochs * per_epoch if per_epoch else None)
            series.append((label, epochs, samples, np.array([_val_error(h) for h in history])))
    by_samples = bool(series) and all(s[2] is not None for s in series)
    fig, ax = _figure_axes(ax, (6.5, 4.2))
    styles = dict(zip(groups, series_styles(len(groups))))
    shown = set()
    for label, epochs, samples, val in series:
        ax.plot(samples if by_samples else epochs, val, marker="o", ms=2.5, lw=1, alpha=0.85,
                label=label if label not in shown else "_nolegend_", **styles[label])
        shown.add(label)
    if budget is not None:
        if not by_samples:
            raise ValueError("learning_curves: budget= needs runs whose samples seen are known")
        ax.axvline(budget, color="0.3", ls="--", lw=1, label=f"chosen budget ({budget:,} samples)")
    if by_samples:
        ax.set_xscale("log")
        ax.set_xlabel("training samples seen (log scale)")
    else:
        ax.set_xlabel("epoch (samples per epoch not recorded)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(ylabel="validation mean 3D error (mm)", title=title or "learning curves")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=1 if len(groups) <= 8 else 2)
    return fig


# --- 3D skeletons (plotly) ----------------------------------------------------------------------

def _points(value, conv: JointConvention, label) -> np.ndarray:
    pts = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
    if pts.shape != (conv.num_joints, 3):
        raise ValueError(f"{label!r}: expected ({conv.num_joints}, 3) joints for convention "
                         f"{conv.name!r}, got shape {pts.shape}")
    return pts


def _gaps_to_none(a: np.ndarray) -> list:
    return np.where(np.isnan(a), None, a).tolist()


def skeletons_3d(frames: Sequence[Mapping[str, object]], convention: str | JointConvention,
                 titles: Sequence[str] | None = None, *, title: str | None = None,
                 colours: Mapping[str, str] | None = None, cols: int | None = None, height: int | None = None):
    """One interactive 3D scene per frame (plotly), ``cols`` (default up to 3) per row.

    Each frame is a dict label -> (J, 3) joints in mm of ``convention`` (e.g. ``{"truth": gt,
    "prediction": pred}``). Per label and frame one line trace draws the convention's bones and one
    marker trace its joints, with the joint names as hover text; a label keeps its colour in every
    scene and has one legend entry (clicking it hides that label everywhere). Scenes use
    ``aspectmode="data"`` so lengths are true. Long ``titles`` are wrapped to the scene's width.
    Returns the plotly Figure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    conv = get_convention(convention) if isinstance(convention, str) else convention
    if not frames:
        raise ValueError("skeletons_3d: no frames given")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"skeletons_3d: {len(titles)} titles for {len(frames)} frames")
    n = len(frames)
    cols = max(1, min(cols or 3, n))
    rows = math.ceil(n / cols)
    labels = list(dict.fromkeys(label for frame in frames for label in frame))
    palette = {label: style["color"] for label, style in zip(labels, series_styles(len(labels)))}
    palette.update(colours or {})

    width = max(30, 120 // cols)                     # characters per title line
    wrapped = ["<br>".join(textwrap.wrap(str(t), width)) or " " for t in titles] if titles else None
    lines = max((w.count("<br>") + 1 for w in wrapped), default=0) if wrapped else 0
    specs = [[{"type": "scene"} if r * cols + c < n else None for c in range(cols)] for r in range(rows)]
    fig = make_subplots(rows=rows, cols=cols, specs=specs, subplot_titles=wrapped,
                        horizontal_spacing=0.03 if cols > 1 else None,
                        vertical_spacing=min(0.06 + 0.03 * lines, 0.8 / (rows - 1)) if rows > 1 else None)

    bones = np.asarray(conv.bones, dtype=int).reshape(-1, 2)           # (E, 2) parent, child
    names = list(conv.joint_names)
    shown = set()
    for k, frame in enumerate(frames):
        row, col = k // cols + 1, k % cols + 1
        for label, value in frame.items():
            pts = _points(value, conv, label)
            # (E, 2, 3) segments + a NaN row each -> one polyline with gaps between bones.
            seg = np.concatenate((pts[bones], np.full((len(bones), 1, 3), np.nan)), 1).reshape(-1, 3)
            colour = palette[label]
            fig.add_trace(go.Scatter3d(x=_gaps_to_none(seg[:, 0]), y=_gaps_to_none(seg[:, 1]),
                                       z=_gaps_to_none(seg[:, 2]), mode="lines", name=str(label),
                                       line={"color": colour, "width": 5}, legendgroup=str(label),
                                       showlegend=label not in shown, hoverinfo="skip"), row=row, col=col)
            fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers", name=str(label),
                                       marker={"size": 3, "color": colour}, text=names, legendgroup=str(label),
                                       showlegend=False,
                                       hovertemplate="%{text}<br>x %{x:.1f}, y %{y:.1f}, z %{z:.1f} mm"
                                                     f"<extra>{label}</extra>"), row=row, col=col)
            shown.add(label)
    # The default camera (eye 1.25, 1.25, 1.25) lets the axis titles spill out of a narrow scene.
    fig.update_scenes(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)",
                      camera_eye={"x": 1.6, "y": 1.6, "z": 1.4})
    fig.update_annotations(font_size=12)
    # plotly's toolbar takes the figure's top-right corner: keep the subplot titles below it.
    top = 44 + 16 * lines + (30 if title else 0)
    fig.update_layout(height=height or 380 * rows + top, margin={"l": 10, "r": 10, "b": 10, "t": top},
                      legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": 0, "yanchor": "top"},
                      title={"text": title, "x": 0.5, "xanchor": "center"} if title else None)
    return fig


def skeleton_3d(joints: Mapping[str, object], convention: str | JointConvention, title: str | None = None,
                **kwargs):
    """One frame's skeletons in one 3D scene: :func:`skeletons_3d` with a single frame (``title``
    over the figure). ``joints`` maps a label to (J, 3) joints in mm of ``convention``."""
    return skeletons_3d([joints], convention, None, title=title, **kwargs)


def joint_groups(uv, groups: Sequence[int], convention: str | JointConvention, ax=None, *,
                 title: str | None = None, names: bool = False, figsize=(3.2, 3.2)):
    """A hand's 2D skeleton (``uv`` (J, 2) crop pixels, image axes: y down) with each joint drawn in the
    colour of its group (``groups`` (J,) ints, one colour per group, the same group the same colour in
    every call); bones in grey. ``names`` writes each joint's name beside it. Returns the figure."""
    conv = get_convention(convention) if isinstance(convention, str) else convention
    points = np.asarray(torch.as_tensor(uv, dtype=torch.float64))
    groups = [int(g) for g in groups]
    if points.shape != (conv.num_joints, 2) or len(groups) != conv.num_joints:
        raise ValueError(f"joint_groups: expected ({conv.num_joints}, 2) points and {conv.num_joints} groups for "
                         f"{conv.name}, got {points.shape} and {len(groups)}")
    fig, ax = _figure_axes(ax, figsize)
    for parent, child in conv.bones:
        ax.plot(points[[parent, child], 0], points[[parent, child], 1], "-", color="0.7", lw=1.5, zorder=1)
    for g in sorted(set(groups)):
        members = [j for j, k in enumerate(groups) if k == g]
        ax.scatter(points[members, 0], points[members, 1], s=42, color=f"C{g}", edgecolor="k", lw=0.5, zorder=2,
                   label=f"group {g + 1}")
    if names:
        for j, name in enumerate(conv.joint_names):
            ax.annotate(name, points[j], fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_aspect("equal")
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.set_xticks([]); ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return fig
