"""handlib.synth: the procedural depth-hand renderer and its datasets (the book's default data).

Pipeline: shape + pose sampling (:mod:`poses`) -> forward kinematics to 25 points and 22 capsules
(:mod:`kinematics`) -> analytic ray casting into the CoM/cube crop (:mod:`render`) -> optional
"real-like" sensor corruption (:mod:`sensor`) -> cached datasets in the shared sample structure
(:mod:`dataset`).

The names below are imported on first access (PEP 562), so that importing a light submodule such as
:mod:`handlib.synth.cli` (``python -m handlib --help``) does not import torch.
"""
import importlib

_LAZY = {
    "SyntheticHands": "handlib.synth.dataset", "SyntheticClips": "handlib.synth.dataset",
    "render_frames": "handlib.synth.frames", "render_clips": "handlib.synth.frames",
    "NUM_PARTS": "handlib.synth.kinematics", "PART_NAMES": "handlib.synth.kinematics",
    "THETA_LIMITS": "handlib.synth.kinematics", "THETA_NAMES": "handlib.synth.kinematics",
    "DOMAINS": "handlib.synth.poses",
}

__all__ = ["SyntheticHands", "SyntheticClips", "render_frames", "render_clips", "NUM_PARTS", "PART_NAMES", "THETA_LIMITS",
           "THETA_NAMES", "DOMAINS"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
