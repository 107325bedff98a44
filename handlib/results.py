"""The results registry: one JSON record per finished training run, and the tables built from them.

Records of the ``book`` and ``full`` profiles go to ``data/results/`` in the repository and are
committed (the closing chapter's ``book-bench`` ones to ``data/results/one_bench/``); ``smoke`` records go to a temporary folder so tests and nbval never touch the committed
ones. ``HANDLIB_RESULTS_DIR`` overrides both. One file per (chapter, model, variant, dataset,
convention, profile, seed): re-running a configuration replaces its record.
Chapters print tables with :func:`summarize` + :func:`format_table` (mean ± std over seeds).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

from handlib.checkpoint import atomic_write
from handlib.paths import REPO_ROOT, in_checkout

SCHEMA_VERSION = 1
KEY_FIELDS = ("chapter", "model", "variant", "dataset", "convention", "profile", "seed")
REQUIRED_FIELDS = KEY_FIELDS + ("schema_version", "epochs", "final_val", "best_val", "test", "wall_s", "device")


def results_dir(profile: str) -> Path:
    """Where records of ``profile`` are written (and read from by default)."""
    if os.environ.get("HANDLIB_RESULTS_DIR"):
        return Path(os.environ["HANDLIB_RESULTS_DIR"])
    from handlib.profiles import BENCH_PROFILES

    if profile in ("smoke", "smoke-bench"):
        return Path(tempfile.gettempdir()) / "handlib-results" / profile
    root = REPO_ROOT / "data" / "results" if in_checkout() else Path.cwd() / "handlib-results"
    return root / "one_bench" if profile in BENCH_PROFILES else root     # the closing chapter's bench


def package_versions() -> dict:
    import numpy
    import torch

    from handlib import __version__ as handlib_version
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "handlib": handlib_version}


def git_state(repo: Path = REPO_ROOT) -> dict | None:
    """{"commit", "dirty"} of the checkout the code runs from (dirty: an uncommitted change outside
    data/, with ``diff_sha256`` naming it), or None outside a git checkout."""
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        # Code only: the records and benchmarks a run writes under data/ are its outputs, not its source.
        diff = git("diff", "HEAD", "--", ".", ":(exclude)data")
        state = {"commit": git("rev-parse", "HEAD"), "dirty": bool(diff)}
        if diff:    # which uncommitted change the run came from, so a dirty record is still traceable
            state["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()[:16]
        return state
    except (OSError, subprocess.SubprocessError):
        return None


def make_record(*, chapter: str, model: str, variant: str, dataset: str, convention: str, profile: str,
                seed: int, result, test_metrics: dict, recipe, selection: str = "best_val",
                extra: dict | None = None, config: dict | None = None, config_hash: str | None = None,
                stage: str | None = None) -> dict:
    """The record of one finished run (``result`` is a train.TrainResult, ``recipe`` a recipe.Recipe).

    ``test_metrics`` are those of the weights chosen by ``selection`` ("best_val" or "last");
    ``config`` / ``config_hash`` identify what was learnt (handlib.runs.run_config), ``stage`` the
    frozen upstream run a two-stage model was trained on."""
    if selection not in ("best_val", "last"):
        raise ValueError(f"selection={selection!r}: expected 'best_val' or 'last'")
    return {
        "schema_version": SCHEMA_VERSION,
        "chapter": chapter, "model": model, "variant": variant, "dataset": dataset,
        "convention": convention, "profile": profile, "seed": int(seed),
        "epochs": len(result.history), "recipe": recipe.to_dict(), "selection": selection,
        "final_val": result.final_val, "best_val": result.best, "test": dict(test_metrics),
        "history": [{"epoch": h["epoch"], "lr": h["lr"], "train": h["train"], "val": h["val"],
                     "val_mean_error_mm": h["val"].get("mean_error_mm"),
                     "samples_seen": h.get("samples_seen")} for h in result.history],
        "config": config, "config_hash": config_hash, "stage": stage,
        "curve": [{"step": c["step"], "samples_seen": c["samples_seen"], "val": c["val"]}
                  for c in getattr(result, "curve", [])],
        "wall_s": round(result.wall_s, 3), "device": result.device,
        "samples_per_s": result.history[-1]["samples_per_s"] if result.history else None,
        "versions": package_versions(), "git": git_state(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": extra or {},
    }


def record_filename(record: dict) -> str:
    parts = [str(record[k]) for k in KEY_FIELDS[:-1]] + [f"seed{record['seed']}"]
    if record.get("stage"):       # a two-stage model: which first stage it was trained on
        parts.insert(3, f"after-{record['stage']}")
    return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "-", p) for p in parts) + ".json"


# Per-frame test predictions beside each record: the error vector pred - truth in float16 (within
# ±100 mm it keeps about 0.03 mm; float32 if any is over 1 m) per run, the truth once per test split (float32, shared by every run
# on that split, named by its hash). A chapter redraws every table and plot from these, no checkpoints.
PREDICTION_DTYPE = "float16"


def predictions_filename(record: dict, tested_on: str | None = None) -> str:
    """The run's test predictions; ``tested_on``: its predictions on another dataset's test split."""
    return record_filename(record)[: -len(".json")] + (f"__on-{tested_on}" if tested_on else "") + ".npz"


def _offsets_and_truth(pred_xyz, truth_xyz, directory: Path):
    """(pred − truth offsets in the stored dtype, the truth file's name), writing the truth once."""
    import numpy as np

    truth = np.ascontiguousarray(np.asarray(truth_xyz, dtype=np.float32))
    offset = np.asarray(pred_xyz, dtype=np.float64) - truth
    # float16 keeps ~0.03 mm within ±100 mm; a wild prediction (over 1 m off) is kept in float32.
    offset = offset.astype(PREDICTION_DTYPE if np.abs(offset).max(initial=0) < 1000 else np.float32)
    truth_name = f"truth-{hashlib.sha256(truth.tobytes()).hexdigest()[:16]}.npz"
    if not (directory / truth_name).is_file():
        _write_npz(directory / truth_name, truth_mm=truth)
    return offset, truth_name


def write_predictions(record: dict, pred_xyz, truth_xyz, directory: str | Path | None = None,
                      val: tuple | None = None, tested_on: str | None = None) -> Path:
    """Write a run's (F, J, 3) test predictions (camera mm) beside its record; returns the path.

    ``val``: the run's (pred, truth) on the validation split too, for choices a chapter must make
    on validation (a blending weight, say), never on the test frames. ``tested_on``: the predictions
    are on that dataset's test split, not the run's own (a domain-gap test)."""
    import numpy as np

    directory = Path(directory) if directory is not None else results_dir(record["profile"])
    offset, truth_name = _offsets_and_truth(pred_xyz, truth_xyz, directory)
    arrays = {"offset_mm": offset, "truth_file": np.array(truth_name)}
    if val is not None:
        arrays["val_offset_mm"], val_truth = _offsets_and_truth(*val, directory)
        arrays["val_truth_file"] = np.array(val_truth)
    path = directory / predictions_filename(record, tested_on)
    _write_npz(path, **arrays)
    return path


def load_predictions(record: dict, directory: str | Path | None = None, split: str = "test",
                     tested_on: str | None = None):
    """(pred, truth), each a (F, J, 3) float32 torch tensor in camera mm, of a run written by
    :func:`write_predictions`; FileNotFoundError naming the file when absent. ``split="val"``: the
    validation predictions (FileNotFoundError when the run did not store them). ``tested_on``: those
    written for another dataset's test split (:func:`write_predictions`)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    import numpy as np
    import torch

    directory = Path(directory) if directory is not None else results_dir(record["profile"])
    path = directory / predictions_filename(record, tested_on)
    if not path.is_file():
        raise FileNotFoundError(f"no per-frame predictions {path} for record {record_filename(record)}")
    with np.load(path) as saved:
        if split == "val" and "val_offset_mm" not in saved:
            raise FileNotFoundError(f"{path} holds no validation predictions (runs recorded before they "
                                    "were stored): retrain the run to get them")
        key = "val_" if split == "val" else ""
        offset, truth_name = saved[f"{key}offset_mm"].astype(np.float32), str(saved[f"{key}truth_file"])
    with np.load(directory / truth_name) as saved:
        truth = saved["truth_mm"]
    return torch.from_numpy(truth + offset), torch.from_numpy(truth.copy())


def _write_npz(path: Path, **arrays) -> None:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def write_record(record: dict, directory: str | Path | None = None) -> Path:
    """Atomically write ``record`` into ``directory`` (default: results_dir(record's profile))."""
    _check_record(record, "record")
    directory = Path(directory) if directory is not None else results_dir(record["profile"])
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write(directory / record_filename(record), lambda f: f.write(text.encode()))


def load_records(directory: str | Path | None = None, *, profile: str = "book", **filters) -> list[dict]:
    """Every record in ``directory`` (default: results_dir(profile)) matching ``filters``
    (e.g. ``model="crossinfonet", dataset="synthetic"``; ``profile`` always filters)."""
    directory = Path(directory) if directory is not None else results_dir(profile)
    unknown = set(filters) - set(KEY_FIELDS)
    if unknown:
        raise ValueError(f"unknown record filter(s) {sorted(unknown)}; valid filters: {', '.join(KEY_FIELDS)}")
    records = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"results record {path} is not valid JSON: {err}") from err
        _check_record(record, str(path))
        wanted = {"profile": profile, **filters}
        if all(record[k] == v for k, v in wanted.items()):
            records.append(record)
    return records


def metric_value(record: dict, metric: str) -> float:
    """A dotted path into a record, e.g. ``"test.mean_error_mm"`` or ``"best_val.mean_error_mm"``."""
    value = record
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"record {record_filename(record)} has no metric {metric!r}")
        value = value[part]
    return float(value)


def summarize(records: list[dict], by: tuple[str, ...] = ("model", "variant", "dataset"),
              metric: str = "test.mean_error_mm") -> list[dict]:
    """One row per distinct ``by`` values: mean and sample std (ddof 1; None for one seed) over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(tuple(record[k] for k in by), []).append(record)
    rows = []
    for key, group in groups.items():
        values = [metric_value(r, metric) for r in group]
        mean = sum(values) / len(values)
        std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
               if len(values) > 1 else None)
        rows.append({**dict(zip(by, key)), "mean": mean, "std": std, "n": len(values),
                     "seeds": sorted(r["seed"] for r in group)})
    return rows


def format_table(rows: list[dict], by: tuple[str, ...] = ("model", "variant", "dataset"),
                 metric_label: str = "mean error (mm)", digits: int = 2) -> str:
    """A markdown table: the ``by`` columns, then "mean ± std (n seeds)"."""
    header = "| " + " | ".join(by + (metric_label,)) + " |"
    lines = [header, "|" + "---|" * (len(by) + 1)]
    for row in rows:
        spread = f" ± {row['std']:.{digits}f}" if row["std"] is not None else ""
        cell = f"{row['mean']:.{digits}f}{spread} (n={row['n']})"
        lines.append("| " + " | ".join([str(row[k]) for k in by] + [cell]) + " |")
    return "\n".join(lines)


def _check_record(record: dict, where: str) -> None:
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise ValueError(f"results record {where} lacks field(s) {missing}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"results record {where} has schema_version {record['schema_version']!r}, "
                         f"expected {SCHEMA_VERSION}")
