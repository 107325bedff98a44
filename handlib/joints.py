"""Joint conventions: names, orders and CrossInfoNet palm/finger partitions.

One source of truth for every dataset's joint set (spec data.md §2 and §4, renderer.md §3.1).
Indices are in each convention's own evaluation order.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointConvention:
    """A dataset's joint set.

    ``palm`` and ``finger`` are the CrossInfoNet partitions in the released code's
    concatenation order; ``from_canonical`` maps the synthetic hand's 25 points
    (21 canonical joints + 4 extra landmarks, renderer.md §3.1) into this order.
    """

    name: str
    joint_names: tuple[str, ...]
    palm: tuple[int, ...]
    finger: tuple[int, ...]
    from_canonical: tuple[int, ...]

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

CONVENTIONS: dict[str, JointConvention] = {
    "full": JointConvention(
        name="full",
        joint_names=CANONICAL_NAMES,
        palm=(0, 1, 5, 9, 13, 17),
        finger=_CANON_FINGER,
        from_canonical=tuple(range(21)),
    ),
    "nyu": JointConvention(
        name="nyu",
        joint_names=("Pinky.T", "Pinky.R", "Ring.T", "Ring.R", "Mid.T", "Mid.R", "Index.T",
                     "Index.R", "Thumb.T", "Thumb.R2", "Thumb.R1", "Wrist2", "Wrist1", "Palm"),
        # Released code: gt_palm = concat(label[:, 0:10][:, 1::2], label[:, 10:]); gt_fing = label[:, 0:10][:, 0::2]
        palm=(1, 3, 5, 7, 9, 10, 11, 12, 13),
        finger=(0, 2, 4, 6, 8),
        from_canonical=(20, 18, 16, 14, 12, 10, 8, 6, 4, 3, 2, 21, 22, 23),
    ),
    "icvl": JointConvention(
        name="icvl",
        joint_names=("Palm", "Thumb.R", "Thumb.M", "Thumb.T", "Index.R", "Index.M", "Index.T",
                     "Mid.R", "Mid.M", "Mid.T", "Ring.R", "Ring.M", "Ring.T",
                     "Pinky.R", "Pinky.M", "Pinky.T"),
        palm=(0, 1, 4, 7, 10, 13),
        finger=(2, 3, 5, 6, 8, 9, 11, 12, 14, 15),
        from_canonical=(24, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20),
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
    ),
    "hands17": JointConvention(
        name="hands17",
        joint_names=("Wrist", "TMCP", "IMCP", "MMCP", "RMCP", "PMCP", "TPIP", "TDIP", "TTIP",
                     "IPIP", "IDIP", "ITIP", "MPIP", "MDIP", "MTIP", "RPIP", "RDIP", "RTIP",
                     "PPIP", "PDIP", "PTIP"),
        palm=(0, 1, 2, 3, 4, 5),
        finger=tuple(range(6, 21)),
        from_canonical=(0, 1, 5, 9, 13, 17, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20),
    ),
}


def get_convention(name: str) -> JointConvention:
    """Look a convention up by name; unknown names raise a ValueError listing the valid ones."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown joint convention {name!r}; expected one of {sorted(CONVENTIONS)}"
        ) from None
