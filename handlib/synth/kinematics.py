"""Hand model: shape parameters, articulation layout and limits, batched forward kinematics.

Frames and numbers are the renderer's design (see the synthetic-hands chapter). Hand frame (right
hand): +x radial (thumb side), +y along the fingers, +z volar; mm; geometry defined at hand length 180 mm and scaled by HL/180.
FK uses only elementwise products (no BLAS) so a frame's result does not depend on its batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

REFERENCE_HAND_LENGTH = 180.0
DIGITS = ("T", "I", "M", "R", "P")

# Articulation vector theta (degrees), 20 values: thumb (CMC flex, CMC abd, MCP, IP),
# then index, middle, ring, little, each (MCP flex, MCP abd, PIP, DIP).
THETA_NAMES = tuple(
    ["T_CMC_flex", "T_CMC_abd", "T_MCP_flex", "T_IP_flex"]
    + [f"{d}_{j}" for d in DIGITS[1:] for j in ("MCP_flex", "MCP_abd", "PIP_flex", "DIP_flex")]
)
# Physiological limits (degrees), after ASAPRealizer's hmi.neurophysics.Hand and the Shadow Hand
# ranges; the thumb's are in a thumb-local frame, tuned visually.
_FINGER_LIMITS = ((-15.0, 90.0), (-15.0, 15.0), (0.0, 110.0), (0.0, 90.0))
_THUMB_LIMITS = ((-20.0, 55.0), (-25.0, 40.0), (-10.0, 60.0), (-15.0, 80.0))
THETA_LIMITS = torch.tensor(list(_THUMB_LIMITS) + list(_FINGER_LIMITS) * 4, dtype=torch.float32)
# Rest splay of the four fingers around which MCP abduction is measured (degrees, + = radial).
REST_SPLAY = (7.0, 0.0, -7.0, -14.0)

# Buchholz, Armstrong & Goldstein (Ergonomics 1992) segment length / hand length: proximal,
# middle, distal.
FINGER_RATIOS = ((0.265, 0.143, 0.097), (0.277, 0.170, 0.108), (0.259, 0.165, 0.107),
                 (0.206, 0.117, 0.093))
THUMB_RATIOS = (0.251, 0.196, 0.158)  # metacarpal, proximal, distal
DISTAL_SOFT_TISSUE_MM = 2.0

# Rest geometry at HL 180 (the renderer's design).
FINGER_MCP = ((26.0, 80.0, 0.0), (7.0, 83.0, 0.0), (-11.0, 78.0, 0.0), (-27.0, 70.0, 1.0))
FINGER_BASE = ((12.0, 14.0, 1.0), (4.0, 16.0, 1.0), (-5.0, 15.0, 1.0), (-13.0, 13.0, 1.0))
THUMB_CMC = (19.0, 14.0, 10.0)
METACARPAL_RADIUS = (12.0, 12.0, 11.5, 10.5)
PHALANX_RADIUS = ((9.6, 8.6, 7.6), (9.8, 8.8, 7.8), (9.2, 8.3, 7.3), (8.2, 7.4, 6.6))
THUMB_RADIUS = (13.5, 10.5, 9.6)
PALM_FILLERS = (((12.0, 10.0, 2.0), (-12.0, 10.0, 2.0), 13.0),
                ((9.0, 38.0, 2.5), (-10.0, 38.0, 2.5), 13.0))
FOREARM = ((0.0, -5.0, 2.0), (0.0, -140.0, 4.0), 22.0)
WRIST_HALF_WIDTH = 14.5  # NYU W1-W2 distance is 29.3 mm (median over the NYU test labels)

# Part labels, one per digit bone plus palm (20 hand parts, as Neverova et al., CVIU 2017, count):
# 0 background, 1 palm, 2-4 thumb MC/PP/DP, 5-8 index MC/PP/MP/DP, 9-12 middle, 13-16 ring,
# 17-20 little, 21 forearm.
NUM_PARTS = 22
PART_NAMES = (("background", "palm", "T_MC", "T_PP", "T_DP")
              + tuple(f"{d}_{b}" for d in DIGITS[1:] for b in ("MC", "PP", "MP", "DP")) + ("arm",))
# Capsule order: 4 finger metacarpals, 12 finger phalanges (finger-major), 3 thumb, 2 fillers, arm.
CAPSULE_PARTS = torch.tensor(
    [5, 9, 13, 17]
    + [5 + 4 * f + k for f in range(4) for k in (1, 2, 3)]
    + [2, 3, 4, 1, 1, 21], dtype=torch.int64)
NUM_CAPSULES = int(CAPSULE_PARTS.numel())
# Canonical ids of the four finger MCPs (the palm reference point averages them with the wrist).
_FINGER_JOINT0 = (5, 9, 13, 17)


def _rotation_x(deg: torch.Tensor) -> torch.Tensor:
    c, s = _cos_sin(deg)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack((o, z, z, z, c, -s, z, s, c), -1).reshape(deg.shape + (3, 3))


def _rotation_y(deg: torch.Tensor) -> torch.Tensor:
    c, s = _cos_sin(deg)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack((c, z, s, z, o, z, -s, z, c), -1).reshape(deg.shape + (3, 3))


def _rotation_z(deg: torch.Tensor) -> torch.Tensor:
    c, s = _cos_sin(deg)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack((c, -s, z, s, c, z, z, z, o), -1).reshape(deg.shape + (3, 3))


def _cos_sin(deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rad = deg.double() * (math.pi / 180.0)  # float64 then rounded: batch-independent bits
    return torch.cos(rad).float(), torch.sin(rad).float()


def matmul3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) @ (..., 3, 3) written as explicit products (fixed summation order)."""
    return (a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :]
            + a[..., :, 2:3] * b[..., 2:3, :])


def dot3(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Dot product over the last axis (size 3) in a fixed summation order."""
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]


def apply3(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) applied to (..., 3) vectors, explicit products."""
    return m[..., :, 0] * v[..., 0:1] + m[..., :, 1] * v[..., 1:2] + m[..., :, 2] * v[..., 2:3]


def _flex(y_axis: torch.Tensor, z_axis: torch.Tensor, deg: torch.Tensor):
    """Columns y, z of R @ Rx(deg) from those of R (flexion turns +y towards +z, volar)."""
    c, s = _cos_sin(deg)
    c, s = c.unsqueeze(-1), s.unsqueeze(-1)
    return c * y_axis + s * z_axis, c * z_axis - s * y_axis


# Thumb metacarpal rest frame Rz(-33) Rx(28) Ry(-75): radial swing, volar tilt, pronation.
THUMB_REST = matmul3(matmul3(_rotation_z(torch.tensor(-33.0)), _rotation_x(torch.tensor(28.0))),
                     _rotation_y(torch.tensor(-75.0)))


@dataclass
class HandShape:
    """Per-hand shape: hand length (mm), per-digit length factors (T, I, M, R, P), radius factor,
    palm-width factor. Each is a tensor with a leading batch axis."""

    hand_length: torch.Tensor   # (B,)
    digit_length: torch.Tensor  # (B, 5)
    radius: torch.Tensor        # (B,)
    palm_width: torch.Tensor    # (B,)

    def as_tensor(self) -> torch.Tensor:
        """(B, 8) packed as hand_length, digit_length x5, radius, palm_width (for storage)."""
        return torch.cat((self.hand_length[:, None], self.digit_length, self.radius[:, None],
                          self.palm_width[:, None]), dim=1)

    @classmethod
    def from_tensor(cls, packed: torch.Tensor) -> "HandShape":
        return cls(packed[:, 0], packed[:, 1:6], packed[:, 6], packed[:, 7])

    @classmethod
    def mean(cls, batch: int = 1, hand_length: float = REFERENCE_HAND_LENGTH) -> "HandShape":
        return cls(torch.full((batch,), hand_length), torch.ones(batch, 5), torch.ones(batch),
                   torch.ones(batch))


def bone_lengths(shape: HandShape) -> torch.Tensor:
    """(B, 5, 3) joint-to-joint lengths (mm) of the three movable bones of each digit
    (thumb: metacarpal, proximal, distal; fingers: proximal, middle, distal incl. soft tissue)."""
    ratios = torch.tensor((THUMB_RATIOS,) + FINGER_RATIOS)
    lengths = ratios * (shape.hand_length[:, None, None] * shape.digit_length[:, :, None])
    return lengths + torch.tensor([0.0, 0.0, DISTAL_SOFT_TISSUE_MM])


def _palm_point(xyz, shape: HandShape) -> torch.Tensor:
    """(..., 3) rest palm coordinates at HL 180 -> (B, ..., 3) scaled by HL and palm width."""
    p = torch.tensor(xyz, dtype=torch.float32)
    scale = (shape.hand_length / REFERENCE_HAND_LENGTH).reshape((-1,) + (1,) * p.dim())
    width = torch.stack((shape.palm_width, torch.ones_like(shape.palm_width),
                         torch.ones_like(shape.palm_width)), -1)
    return p * scale * width.reshape((-1,) + (1,) * (p.dim() - 1) + (3,))


def hand_frame_fk(theta: torch.Tensor, shape: HandShape):
    """Forward kinematics in the hand frame.

    theta: (B, 20) degrees (``THETA_NAMES``). Returns points (B, 25, 3): the 21 canonical joints
    then W_uln, W_rad, C_nyu, C_icvl; and capsules (a (B, 22, 3), b (B, 22, 3), radius (B, 22)).
    """
    batch = theta.shape[0]
    scale = shape.hand_length / REFERENCE_HAND_LENGTH
    lengths = bone_lengths(shape)
    # Fingers (B, 4, ...): MCP rotation Rz(-(abd + splay)) Rx(flex), then PIP and DIP flexion.
    ft = theta[:, 4:].reshape(batch, 4, 4)
    mcp = _palm_point(FINGER_MCP, shape)
    c, s = _cos_sin(-(ft[..., 1] + torch.tensor(REST_SPLAY)))
    y_axis = torch.stack((-s, c, torch.zeros_like(c)), -1)
    z_axis = torch.zeros_like(y_axis)
    z_axis[..., 2] = 1.0
    joints = [mcp]
    for k, angle in enumerate((ft[..., 0], ft[..., 2], ft[..., 3])):
        y_axis, z_axis = _flex(y_axis, z_axis, angle)
        joints.append(joints[-1] + lengths[:, 1:, k, None] * y_axis)
    fingers = torch.stack(joints, 2)  # (B, 4, 4 joints, 3)
    # Thumb: CMC at a fixed palm point, rest frame then Rz(-abd) Rx(flex), MCP and IP flexion.
    cmc = _palm_point(THUMB_CMC, shape)
    rest = THUMB_REST.expand(batch, 3, 3)
    c, s = _cos_sin(-theta[:, 1])
    y_axis = -s[:, None] * rest[..., 0] + c[:, None] * rest[..., 1]
    z_axis = rest[..., 2].clone()
    joints = [cmc]
    for k, angle in enumerate((theta[:, 0], theta[:, 2], theta[:, 3])):
        y_axis, z_axis = _flex(y_axis, z_axis, angle)
        joints.append(joints[-1] + lengths[:, 0, k, None] * y_axis)
    thumb = torch.stack(joints, 1)  # (B, 4, 3)
    wrist = torch.zeros(batch, 1, 3)
    canonical = torch.cat((wrist, thumb, fingers.reshape(batch, 16, 3)), 1)
    # Extra landmarks, rigid in the palm frame (placed from medians over the NYU / ICVL test labels).
    radial = torch.zeros(batch, 3)
    radial[:, 0] = WRIST_HALF_WIDTH * scale * shape.palm_width
    middle_mcp = canonical[:, 9]
    extras = torch.stack((-radial, radial, 0.78 * middle_mcp, 0.90 * middle_mcp), 1)
    points = torch.cat((canonical, extras), 1)

    # Capsules: radius at HL 180 x scale x radius factor.
    rscale = (scale * shape.radius)[:, None]
    tips_dir = fingers[:, :, 3] - fingers[:, :, 2]
    tips_dir = tips_dir / torch.sqrt(dot3(tips_dir, tips_dir))[..., None]
    finger_r = torch.tensor(PHALANX_RADIUS) * rscale[:, :, None]  # (B, 4, 3)
    distal_end = fingers[:, :, 3] - finger_r[:, :, 2, None] * tips_dir  # surface ends at the tip
    finger_b = torch.stack((fingers[:, :, 1], fingers[:, :, 2], distal_end), 2)
    thumb_dir = thumb[:, 3] - thumb[:, 2]
    thumb_dir = thumb_dir / torch.sqrt(dot3(thumb_dir, thumb_dir))[..., None]
    thumb_r = torch.tensor(THUMB_RADIUS) * rscale
    thumb_end = thumb[:, 3] - thumb_r[:, 2, None] * thumb_dir
    fill_a = _palm_point(tuple(f[0] for f in PALM_FILLERS), shape)
    fill_b = _palm_point(tuple(f[1] for f in PALM_FILLERS), shape)
    arm_a = _palm_point((FOREARM[0],), shape)
    arm_b = _palm_point((FOREARM[1],), shape)
    a = torch.cat((_palm_point(FINGER_BASE, shape), fingers[:, :, :3].reshape(batch, 12, 3),
                   thumb[:, :3], fill_a, arm_a), 1)
    b = torch.cat((mcp, finger_b.reshape(batch, 12, 3), thumb[:, 1:3], thumb_end[:, None],
                   fill_b, arm_b), 1)
    radius = torch.cat((torch.tensor(METACARPAL_RADIUS) * rscale, finger_r.reshape(batch, 12),
                        thumb_r, torch.tensor([f[2] for f in PALM_FILLERS]) * rscale,
                        FOREARM[2] * rscale), 1)
    return points, (a, b, radius)


# R0 = diag(1, -1, -1): palm towards the camera, fingers up in the image (OpenCV camera axes).
_R0 = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def global_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) degrees -> (B, 3, 3) hand-to-camera rotation Rz(roll) Ry(yaw) Rx(pitch) R0."""
    r = matmul3(matmul3(_rotation_z(roll), _rotation_y(yaw)), _rotation_x(pitch))
    return matmul3(r, _R0.expand_as(r))


def palm_reference(points: torch.Tensor) -> torch.Tensor:
    """(B, >=21, 3) -> (B, 3) mean of the wrist and the four finger MCPs (fixed summation order)."""
    total = points[:, 0]
    for j in _FINGER_JOINT0:
        total = total + points[:, j]
    return total / 5.0


def forward_kinematics(theta: torch.Tensor, shape: HandShape, rotation: torch.Tensor,
                       translation: torch.Tensor):
    """Hand-frame FK placed in the camera (OpenCV axes, mm): the palm reference point lands on
    ``translation`` (B, 3). Returns points (B, 25, 3) and capsules (a, b, radius)."""
    points, (a, b, radius) = hand_frame_fk(theta, shape)
    ref = palm_reference(points)[:, None]
    rot = rotation[:, None]

    def place(p):
        return apply3(rot, p - ref) + translation[:, None]

    return place(points), (place(a), place(b), radius)


def joint_mean(points: torch.Tensor) -> torch.Tensor:
    """(B, >=21, 3) -> (B, 3) mean of the 21 canonical joints, summed in a fixed order."""
    total = points[:, 0]
    for j in range(1, 21):
        total = total + points[:, j]
    return total / 21.0
