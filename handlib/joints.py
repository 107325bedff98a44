"""Joint conventions: names, orders and CrossInfoNet palm/finger partitions.

One source of truth for every dataset's joint set (orders from the DeepPrior++, CrossInfoNet and
V2V-PoseNet loaders; partitions from CrossInfoNet's released code, network/*/train_and_test.py, and
Du et al., CVPR 2019, Fig. 4; the synthetic hand uses the OpenPose/FreiHAND order).
Indices are in each convention's own evaluation order.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointConvention:
    """A dataset's joint set.

    ``palm`` and ``finger`` are the CrossInfoNet partitions in the released code's
    concatenation order; ``from_canonical`` maps the synthetic hand's 25 points
    (21 canonical joints + 4 extra palm landmarks, see the synthetic-hands chapter) into this order.
    ``bones`` are the skeleton's (parent, child) index pairs in this order: a tree over all
    ``num_joints`` joints (``num_joints - 1`` pairs), rooted at the wrist or palm joint, so
    ``xyz[child] - xyz[parent]`` is a bone vector pointing away from the palm.
    """

    name: str
    joint_names: tuple[str, ...]
    palm: tuple[int, ...]
    finger: tuple[int, ...]
    from_canonical: tuple[int, ...]
    bones: tuple[tuple[int, int], ...]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


CANONICAL_NAMES = (
    "W",
    "T_CMC", "T_MCP", "T_IP", "T_TIP",
    "I_MCP", "I_PIP", "I_DIP", "I_TIP",
    "M_MCP", "M_PIP", "M_DIP", "M_TIP",
    "R_MCP", "R_PIP", "R_DIP", "R_TIP",
    "P_MCP", "P_PIP", "P_DIP", "P_TIP",
)
# Parent of each canonical joint (-1 for the wrist).
CANONICAL_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
# Extra landmarks appended after the 21 joints (rigid in the palm frame, not rendered).
EXTRA_LANDMARKS = ("W_uln", "W_rad", "C_nyu", "C_icvl")

_CANON_FINGER = tuple(i for i in range(21) if i not in (0, 1, 5, 9, 13, 17))
# (parent, child) pairs of the canonical skeleton: the wrist holds the five digit chains.
CANONICAL_BONES = tuple((parent, child) for child, parent in enumerate(CANONICAL_PARENTS) if parent >= 0)

CONVENTIONS: dict[str, JointConvention] = {
    "full": JointConvention(
        name="full",
        joint_names=CANONICAL_NAMES,
        palm=(0, 1, 5, 9, 13, 17),
        finger=_CANON_FINGER,
        from_canonical=tuple(range(21)),
        bones=CANONICAL_BONES,
    ),
    "nyu": JointConvention(
        name="nyu",
        joint_names=("Pinky.T", "Pinky.R", "Ring.T", "Ring.R", "Mid.T", "Mid.R", "Index.T",
                     "Index.R", "Thumb.T", "Thumb.R2", "Thumb.R1", "Wrist2", "Wrist1", "Palm"),
        # Released code: gt_palm = concat(label[:, 0:10][:, 1::2], label[:, 10:]); gt_fing = label[:, 0:10][:, 0::2]
        palm=(1, 3, 5, 7, 9, 10, 11, 12, 13),
        finger=(0, 2, 4, 6, 8),
        from_canonical=(20, 18, 16, 14, 12, 10, 8, 6, 4, 3, 2, 21, 22, 23),
        # Each finger: palm -> PIP ("R") -> tip; thumb: palm -> Thumb.R1 -> Thumb.R2 -> tip; both
        # wrists hang off the palm joint (the same segments as the CrossInfoNet chapter's skeleton).
        bones=((1, 0), (13, 1), (3, 2), (13, 3), (5, 4), (13, 5), (7, 6), (13, 7),
               (9, 8), (10, 9), (13, 10), (13, 11), (13, 12)),
    ),
    "icvl": JointConvention(
        name="icvl",
        joint_names=("Palm", "Thumb.R", "Thumb.M", "Thumb.T", "Index.R", "Index.M", "Index.T",
                     "Mid.R", "Mid.M", "Mid.T", "Ring.R", "Ring.M", "Ring.T",
                     "Pinky.R", "Pinky.M", "Pinky.T"),
        palm=(0, 1, 4, 7, 10, 13),
        finger=(2, 3, 5, 6, 8, 9, 11, 12, 14, 15),
        from_canonical=(24, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20),
        # Palm -> root -> mid -> tip for thumb, index, middle, ring, pinky.
        bones=((0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9),
               (0, 10), (10, 11), (11, 12), (0, 13), (13, 14), (14, 15)),
    ),
    "msra": JointConvention(
        name="msra",
        joint_names=("Wrist", "Index.R", "Index.M", "Index.D", "Index.T", "Mid.R", "Mid.M", "Mid.D",
                     "Mid.T", "Ring.R", "Ring.M", "Ring.D", "Ring.T", "Little.R", "Little.M",
                     "Little.D", "Little.T", "Thumb.R", "Thumb.M", "Thumb.D", "Thumb.T"),
        # Released code: gt_palm = concat(label[:, 0:1], label[:, 1::4]);
        # gt_fing = concat(label[:, 2::4], label[:, 3::4], label[:, 4::4])
        palm=(0, 1, 5, 9, 13, 17),
        finger=(2, 6, 10, 14, 18, 3, 7, 11, 15, 19, 4, 8, 12, 16, 20),
        from_canonical=(0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 1, 2, 3, 4),
        # Wrist -> R -> M -> D -> T for index, middle, ring, little, thumb.
        bones=((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8),
               (0, 9), (9, 10), (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16),
               (0, 17), (17, 18), (18, 19), (19, 20)),
    ),
    "hands17": JointConvention(
        name="hands17",
        joint_names=("Wrist", "TMCP", "IMCP", "MMCP", "RMCP", "PMCP", "TPIP", "TDIP", "TTIP",
                     "IPIP", "IDIP", "ITIP", "MPIP", "MDIP", "MTIP", "RPIP", "RDIP", "RTIP",
                     "PPIP", "PDIP", "PTIP"),
        palm=(0, 1, 2, 3, 4, 5),
        finger=tuple(range(6, 21)),
        from_canonical=(0, 1, 5, 9, 13, 17, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20),
        # Wrist -> MCP; then MCP -> PIP -> DIP -> TIP of each digit (T, I, M, R, P).
        bones=((0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 6), (6, 7), (7, 8), (2, 9), (9, 10),
               (10, 11), (3, 12), (12, 13), (13, 14), (4, 15), (15, 16), (16, 17), (5, 18),
               (18, 19), (19, 20)),
    ),
}

# --- NYU's 36 annotated joints (the dataset's own order, joint_data.mat "joint_names") -------------
# Per digit six points, distal first: KNU3 is the distal segment and A/B its two ends, so A of
# KNU3 is the tip. The evaluated 14 joints fix KNU3_A = tip and KNU2_B = PIP (id 3 "pinky mid";
# for the thumb TH_KNU3_B = IP and TH_KNU2_B = MCP, ids 25 and 27); the other points are read as the
# neighbouring segment ends: KNU3_B, KNU2_A ~ DIP (thumb: IP); KNU1_A ~ PIP (thumb: MCP); KNU1_B ~
# MCP (thumb: CMC). PALM_1 / PALM_2 / PALM_3 are the evaluated Wrist2 (ulnar) / Wrist1 (radial) /
# Palm (ids 30, 31, 32). Where PALM_4..6 lie is not documented in the sources we read.
_NYU36_DIGITS = (("F1", "little"), ("F2", "ring"), ("F3", "middle"), ("F4", "index"), ("TH", "thumb"))
NYU36_NAMES = tuple(f"{d}_KNU{k}_{e}" for d, _ in _NYU36_DIGITS for k in (3, 2, 1) for e in "AB") + tuple(
    f"PALM_{i}" for i in range(1, 7))
# Canonical (tip, DIP, PIP, MCP) per finger, distal first; the thumb's (tip, IP, MCP, CMC).
_NYU36_CANON_CHAIN = {"little": (20, 19, 18, 17), "ring": (16, 15, 14, 13), "middle": (12, 11, 10, 9),
                      "index": (8, 7, 6, 5), "thumb": (4, 3, 2, 1)}
# The synthetic hand has one point per joint, so the two segment ends meeting at a joint
# (KNU3_B / KNU2_A, KNU2_B / KNU1_A) map to that same joint; PALM_4..6 (position unknown) map to
# the palm point C_nyu (23), the nearest thing the synthetic hand can offer.


def _segment_ends(tip: int, dip: int, pip: int, mcp: int) -> tuple[int, ...]:
    """Canonical points of one digit's KNU3_A, KNU3_B, KNU2_A, KNU2_B, KNU1_A, KNU1_B."""
    return (tip, dip, dip, pip, pip, mcp)


_NYU36_FROM_CANONICAL = tuple(
    point for _, digit in _NYU36_DIGITS for point in _segment_ends(*_NYU36_CANON_CHAIN[digit])
) + (21, 22, 23, 23, 23, 23)
_NYU36_PALM_3 = 32
# Each digit's six points chained distal -> proximal, its KNU1_B hanging off PALM_3 (the evaluated
# "Palm" joint, the hub of the NYU-14 skeleton); the other five palm points hang off PALM_3 too.
_NYU36_BONES = tuple(
    pair for base in range(0, 30, 6)
    for pair in ((_NYU36_PALM_3, base + 5),) + tuple((base + k + 1, base + k) for k in range(4, -1, -1))
) + tuple((_NYU36_PALM_3, j) for j in (30, 31, 33, 34, 35))

# Source conventions: a dataset's raw annotation order, not an evaluation order. Kept apart from
# CONVENTIONS (whose members every trainer, the synthetic dataset and its CLI accept) until the
# synthetic dataset knows a default camera for them; get_convention finds both.
SOURCE_CONVENTIONS: dict[str, JointConvention] = {
    "nyu36": JointConvention(
        name="nyu36",
        joint_names=NYU36_NAMES,
        # No paper defines a palm/finger split of the 36 points. Ours follows the canonical rule
        # (palm = wrist/palm points + each digit's first joint): PALM_1..6 and the five KNU1_B.
        palm=(5, 11, 17, 23, 29, 30, 31, 32, 33, 34, 35),
        finger=tuple(j for j in range(30) if j % 6 != 5),
        from_canonical=_NYU36_FROM_CANONICAL,
        bones=_NYU36_BONES,
    ),
}


def get_convention(name: str) -> JointConvention:
    """Look a convention up by name (an evaluation convention of CONVENTIONS or a source one of
    SOURCE_CONVENTIONS, e.g. "nyu36"); unknown names raise a ValueError listing the valid ones."""
    try:
        return CONVENTIONS[name] if name in CONVENTIONS else SOURCE_CONVENTIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown joint convention {name!r}; expected one of {sorted(CONVENTIONS)} "
            f"or a source convention {sorted(SOURCE_CONVENTIONS)}"
        ) from None
