"""handlib.synth: the procedural depth-hand renderer and its datasets (the book's default data).

Pipeline: shape + pose sampling (:mod:`poses`) -> forward kinematics to 25 points and 22 capsules
(:mod:`kinematics`) -> analytic ray casting into the CoM/cube crop (:mod:`render`) -> optional
"real-like" sensor corruption (:mod:`sensor`) -> cached datasets in the shared sample structure
(:mod:`dataset`).
"""
from handlib.synth.dataset import SyntheticClips, SyntheticHands
from handlib.synth.frames import render_clips, render_frames
from handlib.synth.kinematics import NUM_PARTS, PART_NAMES, THETA_LIMITS, THETA_NAMES
from handlib.synth.poses import DOMAINS

__all__ = ["SyntheticHands", "SyntheticClips", "render_frames", "render_clips", "NUM_PARTS", "PART_NAMES", "THETA_LIMITS",
           "THETA_NAMES", "DOMAINS"]
