"""Analytic ray casting of capsules (Quilez's capsule test) into the DeepPrior/CrossInfoNet crop.

Crop pixel (i, j) of a CoM c and cube C at size S is the camera ray
d_ij = ((cx - C/2 + (j + 1/2) C/S) / cz, (cy - C/2 + (i + 1/2) C/S) / cz, 1), so the ray parameter
is the depth z in mm. Only (frame, 8x8 tile, capsule) triples whose projected bounding boxes overlap
are intersected, so the cost follows the hand's area, not the crop's.
"""
from __future__ import annotations

import torch

from handlib.synth.kinematics import dot3

TILE = 4  # 4x4 pixel tiles: after the segment-distance test few wasted ray tests remain
_MISS = torch.iinfo(torch.int64).max
CHUNK_TRIPLES = 16384
_KEY_CAPSULES = 32  # capsule id packed into the low bits of the depth key (22 capsules < 32)


def crop_rays(com: torch.Tensor, cube: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3) CoM mm and (B,) cube mm -> ray slopes dx (B, S) per column and dy (B, S) per row."""
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) * (cube[:, None] / size)
    half = cube[:, None] / 2
    dx = (com[:, 0:1] - half + centres) / com[:, 2:3]
    dy = (com[:, 1:2] - half + centres) / com[:, 2:3]
    return dx, dy


def _to_crop(points: torch.Tensor, com: torch.Tensor, cube: torch.Tensor, size: int):
    """(B, P, 3) camera mm -> continuous crop (col, row) index coordinates, (B, P) each."""
    per_pixel = (cube / size)[:, None]
    col = (points[..., 0] / points[..., 2] * com[:, 2:3] - (com[:, 0:1] - cube[:, None] / 2)) / per_pixel - 0.5
    row = (points[..., 1] / points[..., 2] * com[:, 2:3] - (com[:, 1:2] - cube[:, None] / 2)) / per_pixel - 0.5
    return col, row


def _tile_triples(a, b, radius, com, cube, size):
    """List (frame, capsule, tile row, tile col) whose conservative projected boxes overlap."""
    batch, caps = radius.shape
    n_tiles = (size + TILE - 1) // TILE
    col_a, row_a = _to_crop(a, com, cube, size)
    col_b, row_b = _to_crop(b, com, cube, size)
    # Sphere of radius r at depth z projects within r sqrt(1 + slope^2) / (z - r) of its centre.
    px_per_unit = (com[:, 2] * size / cube)[:, None]

    def extent(p):
        slope2 = (p[..., 0] * p[..., 0] + p[..., 1] * p[..., 1]) / (p[..., 2] * p[..., 2])
        return radius * torch.sqrt(1 + slope2) / (p[..., 2] - radius).clamp(min=1.0) * px_per_unit

    reach = torch.maximum(extent(a), extent(b)) + 0.25  # margin for float rounding
    col_lo = torch.floor((torch.minimum(col_a, col_b) - reach) / TILE).clamp(0, n_tiles - 1)
    col_hi = torch.floor((torch.maximum(col_a, col_b) + reach) / TILE).clamp(0, n_tiles - 1)
    row_lo = torch.floor((torch.minimum(row_a, row_b) - reach) / TILE).clamp(0, n_tiles - 1)
    row_hi = torch.floor((torch.maximum(row_a, row_b) + reach) / TILE).clamp(0, n_tiles - 1)
    inside = ((torch.maximum(col_a, col_b) + reach >= 0) & (torch.minimum(col_a, col_b) - reach <= size - 1)
              & (torch.maximum(row_a, row_b) + reach >= 0) & (torch.minimum(row_a, row_b) - reach <= size - 1)
              & (torch.minimum(a[..., 2], b[..., 2]) > radius))
    n_cols = (col_hi - col_lo + 1).long()
    counts = torch.where(inside, n_cols * (row_hi - row_lo + 1).long(), 0).reshape(-1)
    owner = torch.repeat_interleave(torch.arange(batch * caps), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(owner.numel()) - first[owner]
    cols = n_cols.reshape(-1)[owner]
    tile_col = col_lo.reshape(-1)[owner].long() + local % cols
    tile_row = row_lo.reshape(-1)[owner].long() + local // cols
    # Keep tiles whose centre lies within reach + half a tile diagonal of the projected axis:
    # the silhouette is within `reach` of that 2D segment (bounding boxes of diagonal fingers
    # are mostly empty).
    ca, ra = col_a.reshape(-1)[owner], row_a.reshape(-1)[owner]
    ux, uy = col_b.reshape(-1)[owner] - ca, row_b.reshape(-1)[owner] - ra
    px = tile_col * TILE + (TILE - 1) / 2 - ca
    py = tile_row * TILE + (TILE - 1) / 2 - ra
    along = ((px * ux + py * uy) / (ux * ux + uy * uy).clamp(min=1e-6)).clamp(0.0, 1.0)
    ex, ey = px - along * ux, py - along * uy
    limit = reach.reshape(-1)[owner] + (TILE - 1) * 0.7072  # centre-to-corner-pixel distance
    keep = ex * ex + ey * ey <= limit * limit
    owner = owner[keep]
    return owner // caps, owner % caps, tile_row[keep], tile_col[keep]


def ray_cast(a: torch.Tensor, b: torch.Tensor, radius: torch.Tensor, com: torch.Tensor,
             cube: torch.Tensor, size: int, triples=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render capsules (B, P, 3) (B, P, 3) (B, P) into the crop.

    Returns depth (B, S, S) float32 in mm (0 where no capsule is hit) and the winning capsule
    index (B, S, S) int64 (-1 where none). Ties go to the lower capsule index. ``triples``
    (frame, capsule, tile row, tile col) overrides the culled list (the reference uses all)."""
    batch = a.shape[0]
    dx_all, dy_all = crop_rays(com, cube, size)
    if triples is None:
        triples = _tile_triples(a, b, radius, com, cube, size)
    best = torch.full((batch * size * size,), _MISS, dtype=torch.int64)
    # Chunks keep the ~60 temporaries of the quadratic in cache (one pass over RAM is slower).
    for lo in range(0, triples[0].numel(), CHUNK_TRIPLES):
        chunk = tuple(t[lo:lo + CHUNK_TRIPLES] for t in triples)
        pixel, key = _intersect(a, b, radius, dx_all, dy_all, size, *chunk)
        best.scatter_reduce_(0, pixel, key, reduce="amin")
    miss = best == _MISS
    depth_mm = torch.where(miss, 0, best // _KEY_CAPSULES).to(torch.float32) / 1000.0
    winner = torch.where(miss, -1, best % _KEY_CAPSULES)
    return depth_mm.reshape(batch, size, size), winner.reshape(batch, size, size)


def _intersect(a, b, radius, dx_all, dy_all, size, frame, cap, tile_row, tile_col):
    """Ray-capsule hits for a list of (frame, capsule, tile) triples: (flat pixel, packed key)."""
    offs = torch.arange(TILE)
    # Past the crop edge a tile repeats the last row/column: same ray, same result, harmless.
    cols = (tile_col[:, None] * TILE + offs).clamp(max=size - 1)       # (T, TILE)
    rows = (tile_row[:, None] * TILE + offs).clamp(max=size - 1)
    dx = dx_all[frame[:, None], cols]
    dy = dy_all[frame[:, None], rows]
    ca, cb, r = a[frame, cap], b[frame, cap], radius[frame, cap]       # (T, 3), (T,)
    ba = cb - ca
    # Ray origin moved to depth a_z along each ray (t = a_z + s): keeps float32 terms small.
    t0 = ca[:, 2:3]
    oax = (t0 * dx - ca[:, 0:1])[:, None, :]                           # (T, 1, TILE) varies by col
    oay = (t0 * dy - ca[:, 1:2])[:, :, None]                           # (T, TILE, 1) varies by row
    dxc, dyr = dx[:, None, :], dy[:, :, None]
    bax, bay, baz = (ba[:, k, None, None] for k in range(3))
    baba = dot3(ba, ba)[:, None, None]
    r2 = (r * r)[:, None, None]
    bard = (bax * dxc + baz) + bay * dyr
    baoa = bax * oax + bay * oay
    rdoa = oax * dxc + oay * dyr
    oaoa = oax * oax + oay * oay
    dd = (dxc * dxc + 1.0) + dyr * dyr
    k2 = baba * dd - bard * bard
    k1 = baba * rdoa - baoa * bard
    k0 = baba * oaoa - baoa * baoa - r2 * baba
    h = k1 * k1 - k2 * k0
    s_body = (-k1 - torch.sqrt(h.clamp(min=0.0))) / k2.clamp(min=1e-12)
    y = baoa + s_body * bard
    body = (h > 0) & (y > 0) & (y < baba)
    # End caps: the sphere at a (y <= 0) or at b (y > 0); oc = oa - w ba.
    w = (y > 0).to(torch.float32)
    b2 = rdoa - w * bard
    c2 = oaoa - 2.0 * w * baoa + w * baba - r2
    h2 = b2 * b2 - dd * c2
    s_cap = (-b2 - torch.sqrt(h2.clamp(min=0.0))) / dd
    hit = body | ((h > 0) & (h2 > 0))
    depth = t0[:, :, None] + torch.where(body, s_body, s_cap)
    # Packed key: depth in micrometres, capsule id in the low bits, so amin picks the nearest.
    pos = hit.reshape(-1).nonzero().squeeze(1)
    tri, within = pos // (TILE * TILE), pos % (TILE * TILE)
    pixel = (frame[tri] * size + rows[tri, within // TILE]) * size + cols[tri, within % TILE]
    key = torch.round(depth.reshape(-1)[pos] * 1000.0).to(torch.int64) * _KEY_CAPSULES + cap[tri]
    return pixel, key


def surface_normals(depth: torch.Tensor, winner: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                    com: torch.Tensor, cube: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic unit normals (B, S, S, 3) at the hits and cos(angle to the viewing ray) (B, S, S);
    zeros where nothing was hit. Computed on the hit pixels only."""
    batch, size = depth.shape[0], depth.shape[-1]
    dx, dy = crop_rays(com, cube, size)
    pos = (winner.reshape(-1) >= 0).nonzero().squeeze(1)
    frame, row, col = pos // (size * size), (pos // size) % size, pos % size
    ray = torch.stack((dx[frame, col], dy[frame, row], torch.ones(pos.numel())), -1)
    point = depth.reshape(-1)[pos, None] * ray
    cap = winner.reshape(-1)[pos]
    pa, pb = a[frame, cap], b[frame, cap]
    ba = pb - pa
    along = (dot3(point - pa, ba) / dot3(ba, ba).clamp(min=1e-12)).clamp(0.0, 1.0)
    normal = point - (pa + along[..., None] * ba)
    normal = normal / torch.sqrt(dot3(normal, normal)).clamp(min=1e-6)[..., None]
    normals = torch.zeros(batch * size * size, 3)
    normals[pos] = normal
    cos_view = torch.zeros(batch * size * size)
    cos_view[pos] = -dot3(normal, ray) / torch.sqrt(dot3(ray, ray))
    return normals.reshape(batch, size, size, 3), cos_view.reshape(batch, size, size)


def ray_cast_reference(a, b, radius, com, cube, size, chunk: int = 4):
    """Brute-force reference for tests: every pixel against every capsule (no culling)."""
    batch, caps = radius.shape
    depths, winners = [], []
    for start in range(0, batch, chunk):  # chunks of frames bound the memory; not a pixel loop
        sl = slice(start, start + chunk)
        n = a[sl].shape[0]
        tiles = (size + TILE - 1) // TILE
        frame = torch.arange(n).repeat_interleave(caps * tiles * tiles)
        capi = torch.arange(caps).repeat_interleave(tiles * tiles).repeat(n)
        grid = torch.arange(tiles * tiles).repeat(n * caps)
        depth, winner = ray_cast(a[sl], b[sl], radius[sl], com[sl], cube[sl], size,
                                 triples=(frame, capi, grid // tiles, grid % tiles))
        depths.append(depth)
        winners.append(winner)
    return torch.cat(depths), torch.cat(winners)
