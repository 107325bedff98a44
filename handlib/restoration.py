"""Patchwise restoration of predicted part-label maps (Neverova et al., CVIU 2017, §3.1 and Table 2).

A noisy segmentation of a real frame is made to look like the synthetic label maps it was trained on:

* a **dictionary** of 27 × 27 label patches cut around the hand pixels of synthetic label maps, each
  one-hot encoded per pixel (``labels`` bits a pixel), so that the Hamming distance of two codes is twice
  the number of pixels whose labels differ;
* for every hand pixel of a predicted map, the patch around it is looked up: its **nearest neighbours by
  Hamming distance** with faiss' binary indexes, exact (``IndexBinaryFlat``) or approximate
  (``IndexBinaryHNSW``), never a hand-written search;
* **Eq. 2**: each pixel takes the label most often given to it by the nearest patches of all hand pixels
  within a 17 × 17 window around it (each patch, placed at its own pixel, covers the window), counted in
  one vectorised pass (no loop over pixels);
* the **acceptance test**: a restored map is used for training only if the part barycentres lie closer
  to the known joints (summed over joints) than those of the map before restoration.

Table 2's CRF alternatives (N = 10 candidates a pixel, Hamming unary) are here too:
:func:`crf_potts` (alpha-expansion with ``gco-wrapper``) and :func:`crf_overlap` (alpha-expansion moves,
each solved as a minimum cut with ``PyMaxflow``).

Label maps hold 0 (not hand) and 1 .. ``labels`` − 1 (parts); hand pixels are given by a mask.
"""
from __future__ import annotations

import time

import numpy as np

PATCH = 27
WINDOW = 17
CANDIDATES = 10                 # N of the CRF alternatives
LABELS = 21                     # 0 = not hand, 1..20 = parts
HNSW_M = 32                     # neighbours per node of the approximate index
HNSW_EF_SEARCH = 64


def _faiss():
    import faiss

    return faiss


# --- patches and their codes -----------------------------------------------------------------------

def patches_at(label_map: np.ndarray, positions: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """(n, patch, patch) uint8 label patches of one (H, W) map centred on ``positions`` (n, 2) rows and
    columns; outside the map counts as 0 (not hand)."""
    half = patch // 2
    padded = np.pad(np.asarray(label_map, dtype=np.uint8), half)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (patch, patch))
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(windows[positions[:, 0], positions[:, 1]])


def encode(patches: np.ndarray, labels: int = LABELS) -> np.ndarray:
    """(n, P, P) label patches → (n, bytes) uint8 binary codes: per pixel ``labels`` bits, one set (one-hot),
    zero bits padding to a whole byte. Hamming(code a, code b) = 2 × pixels whose labels differ."""
    patches = np.asarray(patches)
    bits = patches.reshape(len(patches), -1, 1) == np.arange(labels, dtype=patches.dtype)
    bits = bits.reshape(len(patches), -1)
    return np.packbits(bits, axis=1)


def code_bits(patch: int = PATCH, labels: int = LABELS) -> int:
    """Length of one code in bits (faiss' ``d``): patch² × labels, rounded up to a whole byte."""
    return -(-patch * patch * labels // 8) * 8


def hand_positions(mask: np.ndarray) -> np.ndarray:
    """(n, 2) rows and columns of the set pixels of an (H, W) mask, row-major."""
    return np.argwhere(np.asarray(mask, dtype=bool))


def cut_patches(label_maps: np.ndarray, per_map: int | None = None, seed: int = 0, patch: int = PATCH) -> np.ndarray:
    """The dictionary's patches: for each (H, W) map of ``label_maps`` (N, H, W), the patches around its hand
    pixels (label > 0), or ``per_map`` of them drawn at random (seeded) when given."""
    rng = np.random.default_rng(seed)
    out = []
    for label_map in np.asarray(label_maps):
        positions = hand_positions(label_map > 0)
        if per_map is not None and len(positions) > per_map:
            positions = positions[np.sort(rng.choice(len(positions), per_map, replace=False))]
        out.append(patches_at(label_map, positions, patch))
    return np.concatenate(out) if out else np.zeros((0, patch, patch), np.uint8)


class PatchDictionary:
    """Synthetic label patches with an exact and an approximate faiss binary index over their codes.

    ``search(patches, k, exact=True)`` → (Hamming distances in bits (n, k) int32, dictionary rows (n, k))."""

    def __init__(self, patches: np.ndarray, labels: int = LABELS, approximate: bool = True,
                 hnsw_m: int = HNSW_M, ef_search: int = HNSW_EF_SEARCH):
        faiss = _faiss()
        self.patches = np.ascontiguousarray(patches, dtype=np.uint8)
        self.labels, self.patch = labels, self.patches.shape[-1]
        self.codes = encode(self.patches, labels)
        self.bits = self.codes.shape[1] * 8
        self.centre = self.patches[:, self.patch // 2, self.patch // 2]
        tick = time.perf_counter()
        self.exact = faiss.IndexBinaryFlat(self.bits)
        self.exact.add(self.codes)
        self.approximate = None
        self.build_seconds = {"exact": time.perf_counter() - tick}
        if approximate:
            tick = time.perf_counter()
            self.approximate = faiss.IndexBinaryHNSW(self.bits, hnsw_m)
            self.approximate.hnsw.efSearch = ef_search
            self.approximate.add(self.codes)
            self.build_seconds["approximate"] = time.perf_counter() - tick

    def __len__(self) -> int:
        return len(self.patches)

    @property
    def memory_bytes(self) -> dict:
        """Bytes held: the label patches, their codes (the exact index holds one copy of them)."""
        return {"patches": self.patches.nbytes, "codes": self.codes.nbytes}

    def search(self, patches: np.ndarray, k: int = 1, exact: bool = True):
        index = self.exact if exact or self.approximate is None else self.approximate
        distances, rows = index.search(encode(patches, self.labels), k)
        return distances, rows


# --- Eq. 2: voting over a window ------------------------------------------------------------------

def vote(shape, positions: np.ndarray, neighbours: np.ndarray, window: int = WINDOW,
         labels: int = LABELS) -> np.ndarray:
    """(labels, H, W) vote counts: the patch ``neighbours[i]`` placed at pixel ``positions[i]`` gives each
    pixel within the ``window`` × ``window`` square around ``positions[i]`` one vote for its own label there
    (so each pixel is voted on by the patches of the pixels within its own window). One bincount."""
    h, w = shape
    half, centre = window // 2, neighbours.shape[-1] // 2
    offsets = np.arange(-half, half + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    rows = positions[:, :1] + dy.reshape(1, -1)
    cols = positions[:, 1:] + dx.reshape(1, -1)
    given = neighbours[:, centre + dy.reshape(-1), centre + dx.reshape(-1)].astype(np.int64)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = (given * h + rows) * w + cols
    return np.bincount(flat[inside], minlength=labels * h * w).reshape(labels, h, w)


def decide(votes: np.ndarray, label_map: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each hand pixel's most voted part (1..labels − 1); the prediction where no patch voted a part;
    0 off the hand."""
    parts = votes[1:]
    best = parts.argmax(0) + 1
    out = np.where(parts.max(0) > 0, best, label_map)
    return np.where(mask, out, 0).astype(np.int64)


def restore(label_map: np.ndarray, mask: np.ndarray, dictionary: PatchDictionary, exact: bool = True,
            window: int = WINDOW) -> np.ndarray:
    """Eq. 2 on one (H, W) predicted map: nearest dictionary patch of every hand pixel, then the window vote."""
    positions = hand_positions(mask)
    if len(positions) == 0:
        return np.where(mask, label_map, 0).astype(np.int64)
    _, rows = dictionary.search(patches_at(np.where(mask, label_map, 0), positions, dictionary.patch), 1, exact)
    votes = vote(label_map.shape, positions, dictionary.patches[rows[:, 0]], window, dictionary.labels)
    return decide(votes, label_map, mask)


def restore_nearest(label_map: np.ndarray, mask: np.ndarray, dictionary: PatchDictionary,
                    exact: bool = True) -> np.ndarray:
    """Table 2's "NN-search, no integration": each hand pixel takes the centre label of its nearest patch."""
    out = np.zeros(label_map.shape, np.int64)
    positions = hand_positions(mask)
    if len(positions):
        _, rows = dictionary.search(patches_at(np.where(mask, label_map, 0), positions, dictionary.patch), 1, exact)
        out[positions[:, 0], positions[:, 1]] = dictionary.centre[rows[:, 0]]
    return out


# --- the acceptance test ---------------------------------------------------------------------------

def barycentre_distances(label_map: np.ndarray, joints_uv: np.ndarray, joint_parts) -> np.ndarray:
    """(J,) distances in pixels from each joint (``joints_uv`` (J, 2) columns, rows of the map) to the
    barycentre of the pixels carrying its part(s); a joint whose parts have no pixel is as far as the map's
    diagonal (no map can be worse)."""
    h, w = label_map.shape
    rows, cols = np.indices((h, w))
    out = np.empty(len(joint_parts))
    for j, parts in enumerate(joint_parts):        # a loop over joints (14), not pixels
        sel = np.isin(label_map, parts)
        if not sel.any():
            out[j] = np.hypot(h, w)
            continue
        centre = np.array([cols[sel].mean(), rows[sel].mean()])
        out[j] = np.linalg.norm(centre - np.asarray(joints_uv[j], dtype=float))
    return out


def accept(before: np.ndarray, after: np.ndarray, joints_uv: np.ndarray, joint_parts) -> bool:
    """Whether the restored map ``after`` is kept: its barycentres' summed distance to the joints is smaller
    than that of ``before``."""
    return bool(barycentre_distances(after, joints_uv, joint_parts).sum()
                < barycentre_distances(before, joints_uv, joint_parts).sum())


# --- Table 2's CRF alternatives ------------------------------------------------------------------

POTTS_WEIGHT = 20.0            # pixels of patch disagreement one label change along an edge costs
OVERLAP_WEIGHT = 1.0 / PATCH   # per disagreeing pixel of two neighbours' overlapping patches


def candidates(label_map: np.ndarray, mask: np.ndarray, dictionary: PatchDictionary, n: int = CANDIDATES,
               exact: bool = True):
    """The N nearest dictionary patches of every hand pixel: (positions (P, 2), distances in differing
    pixels (P, N), patches (P, N, 27, 27))."""
    positions = hand_positions(mask)
    distances, rows = dictionary.search(patches_at(np.where(mask, label_map, 0), positions, dictionary.patch), n, exact)
    return positions, distances.astype(np.float64) / 2, dictionary.patches[rows]


def grid_edges(positions: np.ndarray, shape) -> np.ndarray:
    """(E, 2) index pairs (i < j) of 4-neighbouring hand pixels, and their direction (E,): 0 right, 1 down."""
    h, w = shape
    index = -np.ones(shape, np.int64)
    index[positions[:, 0], positions[:, 1]] = np.arange(len(positions))
    right = np.stack((index[:, :-1].ravel(), index[:, 1:].ravel()), 1)
    down = np.stack((index[:-1, :].ravel(), index[1:, :].ravel()), 1)
    edges = np.concatenate((right, down))
    direction = np.concatenate((np.zeros(len(right), np.int64), np.ones(len(down), np.int64)))
    keep = (edges >= 0).all(1)
    return edges[keep], direction[keep]


def crf_potts(label_map: np.ndarray, mask: np.ndarray, dictionary: PatchDictionary, n: int = CANDIDATES,
              weight: float = POTTS_WEIGHT, exact: bool = True) -> np.ndarray:
    """Table 2's "CRF, Potts-like model": each hand pixel picks one of its N candidate patches, paying the
    Hamming distance (differing pixels); neighbours pay ``weight`` when their picks' centre labels differ.
    Since that pairwise term depends on the picks only through their centre labels, the best pick for a
    label is the nearest candidate with that centre: the energy is exactly a Potts model over the 20 parts,
    unary U_p(l) = min over p's candidates centred on l (a large cost when none is), solved by
    alpha-expansion (``gco-wrapper``)."""
    import gco

    positions, distances, patches = candidates(label_map, mask, dictionary, n, exact)
    out = np.zeros(label_map.shape, np.int64)
    if len(positions) == 0:
        return out
    centre = patches[:, :, dictionary.patch // 2, dictionary.patch // 2].astype(np.int64)   # (P, N)
    parts = dictionary.labels - 1
    big = float(dictionary.patch ** 2 + 1)
    unary = np.full((len(positions), parts), big)
    for k in range(n - 1, -1, -1):      # nearer candidates overwrite farther ones (loop over N, not pixels)
        hand = centre[:, k] > 0
        unary[np.flatnonzero(hand), centre[hand, k] - 1] = np.minimum(
            unary[np.flatnonzero(hand), centre[hand, k] - 1], distances[hand, k])
    edges, _ = grid_edges(positions, label_map.shape)
    pairwise = (1 - np.eye(parts)) * weight
    if len(edges):
        picked = gco.cut_general_graph(edges.astype(np.int32), np.ones(len(edges)), unary, pairwise,
                                       algorithm="expansion")
    else:
        picked = unary.argmin(1)
    out[positions[:, 0], positions[:, 1]] = np.asarray(picked) + 1
    return out


def overlap_costs(patches: np.ndarray, edges: np.ndarray, direction: np.ndarray, chunk: int = 256) -> np.ndarray:
    """(E, N, N) pixels of disagreement between candidate a of pixel i and candidate b of pixel j, over the
    area where the two patches, placed at i and at its right (direction 0) or lower (1) neighbour j, overlap."""
    n = patches.shape[1]
    out = np.empty((len(edges), n, n), np.float64)
    for start in range(0, len(edges), chunk):       # chunks of edges, for memory
        e = np.arange(start, min(start + chunk, len(edges)))
        for d, (cut_i, cut_j) in enumerate((((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                                            ((slice(1, None), slice(None)), (slice(None, -1), slice(None))))):
            sel = e[direction[e] == d]
            if len(sel) == 0:
                continue
            a = patches[edges[sel, 0]][(..., *cut_i)].reshape(len(sel), n, 1, -1)
            b = patches[edges[sel, 1]][(..., *cut_j)].reshape(len(sel), 1, n, -1)
            out[sel] = (a != b).sum(-1)
    return out


def _energy(labels, unary, edges, pair):
    return unary[np.arange(len(labels)), labels].sum() + pair[np.arange(len(edges)), labels[edges[:, 0]],
                                                               labels[edges[:, 1]]].sum()


def expansion(unary: np.ndarray, edges: np.ndarray, pair: np.ndarray, cycles: int = 5):
    """Alpha-expansion for an energy Σ_p unary[p, x_p] + Σ_e pair[e, x_i, x_j] with a table per edge:
    (labels (P,), energy). Each move (every node keeps its label or takes alpha) is a binary energy solved
    exactly as a minimum cut (``PyMaxflow``); an edge term that is not submodular for the move is truncated
    (its cost of (alpha, x_j) raised, Rother et al. 2005) and a move is kept only when it lowers the true
    energy. Starts from each node's cheapest label; loops over labels and cycles, never over nodes."""
    import maxflow

    nodes = np.arange(len(unary))
    labels = unary.argmin(1)
    energy = _energy(labels, unary, edges, pair)
    i, j = edges[:, 0], edges[:, 1]
    e = np.arange(len(edges))
    for _ in range(cycles):
        improved = False
        for alpha in range(unary.shape[1]):
            xi, xj = labels[i], labels[j]
            A, B = pair[e, xi, xj], pair[e, xi, alpha]
            C, D = pair[e, alpha, xj], pair[e, alpha, alpha]
            C = np.maximum(C, A + D - B)            # truncation: B + C - A - D >= 0
            cost0 = unary[nodes, labels].copy()     # y = 0: keep
            cost1 = unary[:, alpha].copy()          # y = 1: switch to alpha
            # E(yi, yj) = A + (C - A) yi + (D - C) yj + (B + C - A - D) (1 - yi) yj
            np.add.at(cost1, i, C - A)
            np.add.at(cost1, j, D - C)
            g = maxflow.GraphFloat()
            ids = g.add_nodes(len(nodes))
            low = np.minimum(cost0, cost1)
            g.add_grid_tedges(ids, cost1 - low, cost0 - low)   # source capacity: the cost of the sink side (y = 1)
            if len(edges):
                g.add_edges(ids[i], ids[j], B + C - A - D, np.zeros(len(edges)))
            g.maxflow()
            proposal = np.where(g.get_grid_segments(ids), alpha, labels)
            new = _energy(proposal, unary, edges, pair)
            if new < energy - 1e-9:
                labels, energy, improved = proposal, new, True
        if not improved:
            break
    return labels, energy


def crf_overlap(label_map: np.ndarray, mask: np.ndarray, dictionary: PatchDictionary, n: int = CANDIDATES,
                weight: float = OVERLAP_WEIGHT, cycles: int = 5, exact: bool = True) -> np.ndarray:
    """Table 2's "CRF, Hamming distance on overlapping patch area": each hand pixel picks one of its N
    candidates (Hamming unary, differing pixels); neighbours pay ``weight`` × the pixels where their picked
    patches disagree on their overlap. That pairwise term differs for every edge and is not a metric, which
    ``gco-wrapper``'s alpha-expansion needs (one label-pair table for all edges, metric): the moves are built
    here, each solved exactly as a minimum cut with ``PyMaxflow``, non-submodular edge terms truncated
    (Rother et al. 2005) and a move kept only when it lowers the true energy."""
    positions, unary, patches = candidates(label_map, mask, dictionary, n, exact)
    out = np.zeros(label_map.shape, np.int64)
    if len(positions) == 0:
        return out
    edges, direction = grid_edges(positions, label_map.shape)
    pair = weight * overlap_costs(patches, edges, direction)
    labels, _ = expansion(unary, edges, pair, cycles)
    nodes = np.arange(len(positions))
    centre = patches[nodes, labels, dictionary.patch // 2, dictionary.patch // 2]
    out[positions[:, 0], positions[:, 1]] = centre
    return out
