"""Checkpoints: atomic writes, safe loading, RNG capture, and clear errors on mismatch.

A training checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). Writes go to a temporary file in the same
folder and are renamed over the target, so a crash mid-write never leaves a broken checkpoint.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from handlib.fileio import atomic_write  # re-exported: checkpoint.atomic_write
from handlib.errors import CheckpointError

FORMAT_VERSION = 1


def save(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` with an atomic rename."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a handlib checkpoint with ``weights_only=True``; unreadable files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated / corrupt / foreign files
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a handlib checkpoint: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    if not isinstance(obj, dict) or obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} is not a handlib checkpoint (format_version "
                              f"{obj.get('format_version') if isinstance(obj, dict) else None!r}, "
                              f"expected {FORMAT_VERSION})")
    return obj


def check_compatible(checkpoint_meta: dict, expected_meta: dict, path: str | os.PathLike) -> None:
    """Raise CheckpointError naming the first field (model, variant, recipe, ...) that differs.

    A field absent from the checkpoint counts as None, so a run that sets a field to None (e.g. no
    augmentation) matches checkpoints written before the field existed."""
    for key, want in expected_meta.items():
        got = checkpoint_meta.get(key)
        if got != want:
            raise CheckpointError(f"checkpoint {path} was written for {key}={got!r}, "
                                  f"but this run has {key}={want!r}")


# --- RNG states --------------------------------------------------------------------------------
# numpy's state holds an ndarray, which weights_only loading refuses; it is stored as a tensor.

def capture_rng_state() -> dict:
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
