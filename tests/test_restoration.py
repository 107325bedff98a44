"""Patchwise restoration (handlib.restoration): faiss search = brute force, Eq. 2 voting on hand-made maps,
the acceptance rule, and Table 2's CRF alternatives on tiny constructed cases."""
import itertools

import numpy as np
import pytest

pytest.importorskip("faiss")

from handlib import restoration as R


def _brute_hamming(a_patches, b_patches):
    """Pixels whose labels differ, every pair (the plain definition, no codes)."""
    a = a_patches.reshape(len(a_patches), 1, -1)
    b = b_patches.reshape(1, len(b_patches), -1)
    return (a != b).sum(-1)


def test_codes_count_differing_pixels_twice():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, R.LABELS, (2, 5, 27, 27), dtype=np.uint8)
    codes_a, codes_b = R.encode(a), R.encode(b)
    assert codes_a.shape == (5, R.code_bits() // 8)
    popcount = np.unpackbits(codes_a[:, None] ^ codes_b[None], axis=-1).sum(-1)
    assert np.array_equal(popcount, 2 * _brute_hamming(a, b))


def test_faiss_search_equals_brute_force():
    rng = np.random.default_rng(1)
    # a small dictionary of blocky label patches (several at equal distance: ties are compared by distance)
    base = rng.integers(0, 4, (300, 9, 9), dtype=np.uint8)
    patches = base.repeat(3, 1).repeat(3, 2)
    dictionary = R.PatchDictionary(patches, approximate=True, hnsw_m=16, ef_search=256)
    queries = patches[rng.choice(300, 40)].copy()
    queries[:, rng.integers(0, 27, 40), rng.integers(0, 27, 40)] = 7      # a few wrong pixels
    truth = 2 * _brute_hamming(queries, patches)
    k = 5
    distances, rows = dictionary.search(queries, k, exact=True)
    expected = np.sort(truth, axis=1)[:, :k]
    assert np.array_equal(distances, expected)
    assert np.array_equal(np.take_along_axis(truth, rows, 1), distances)   # the rows found are that far
    approx, approx_rows = dictionary.search(queries, 1, exact=False)
    # the approximate index on a dictionary this small finds the nearest distance
    assert (approx[:, 0] == expected[:, 0]).mean() >= 0.95
    assert np.array_equal(np.take_along_axis(truth, approx_rows, 1), approx)
    assert dictionary.memory_bytes == {"patches": 300 * 27 * 27, "codes": 300 * R.code_bits() // 8}


def test_vote_on_hand_made_map():
    """Three 3 x 3 patches in a 3 x 3 window: patches of 1 at (2, 1) and (2, 2), a patch of 2 at (2, 3)."""
    positions = np.array([[2, 1], [2, 2], [2, 3]])
    neighbours = np.stack([np.full((3, 3), 1), np.full((3, 3), 1), np.full((3, 3), 2)]).astype(np.uint8)
    votes = R.vote((5, 5), positions, neighbours, window=3, labels=3)
    ones = np.zeros((5, 5), int)
    ones[1:4, 0:3] += 1
    ones[1:4, 1:4] += 1
    twos = np.zeros((5, 5), int)
    twos[1:4, 2:5] += 1
    assert np.array_equal(votes[1], ones) and np.array_equal(votes[2], twos) and votes[0].sum() == 0
    mask = np.zeros((5, 5), bool)
    mask[2, 1:4] = True
    before = np.array([[0] * 5, [0] * 5, [0, 2, 2, 2, 0], [0] * 5, [0] * 5])
    decided = R.decide(votes, before, mask)
    # (2, 1): 2 votes for 1; (2, 2): 2 for 1 against 1 for 2; (2, 3): 1 each, the lower label wins a tie
    assert decided[2].tolist() == [0, 1, 1, 1, 0] and decided.sum() == 3


def _clean_map():
    m = np.zeros((48, 48), np.int64)
    m[10:30, 12:24] = 1          # palm
    m[10:30, 24:30] = 8          # a finger
    m[30:40, 14:20] = 4          # the thumb
    return m


def test_restore_removes_isolated_errors():
    clean = _clean_map()
    dictionary = R.PatchDictionary(R.cut_patches(clean[None]), approximate=False)
    noisy = clean.copy()
    noisy[15, 15] = 8            # a finger pixel inside the palm
    noisy[20, 27] = 4            # a thumb pixel inside the finger
    mask = clean > 0
    restored = R.restore(noisy, mask, dictionary)
    assert np.array_equal(restored, clean)
    nearest = R.restore_nearest(noisy, mask, dictionary)
    assert (nearest[mask] == clean[mask]).mean() > 0.99


def test_acceptance_rule():
    joints_uv = np.array([[26.0, 12.0], [17.0, 35.0]])       # (column, row): a finger tip, the thumb
    parts = ((8,), (4,))
    clean = _clean_map()
    wrong = clean.copy()
    wrong[30:40, 14:20] = 1      # the thumb labelled palm: its barycentre is missing
    wrong[10:13, 24:30] = 1      # the fingertip labelled palm: the finger's barycentre moves away
    assert R.accept(wrong, clean, joints_uv, parts)
    assert not R.accept(clean, wrong, joints_uv, parts)
    assert not R.accept(clean, clean, joints_uv, parts)      # no improvement, not kept
    d = R.barycentre_distances(wrong, joints_uv, parts)
    assert d[1] == pytest.approx(np.hypot(48, 48))           # a missing part costs the diagonal


def _energy_potts(labels, unary, edges, weight):
    return unary[np.arange(len(labels)), labels].sum() + weight * (labels[edges[:, 0]] != labels[edges[:, 1]]).sum()


def _one_wrong_pixel():
    """The clean map, a dictionary cut from it, the map with one hand pixel mislabelled, the hand mask."""
    clean = _clean_map()
    dictionary = R.PatchDictionary(R.cut_patches(clean[None]), approximate=False)
    noisy = clean.copy()
    noisy[15, 15] = 8
    return clean, dictionary, noisy, clean > 0


def test_crf_potts_tiny_case():
    clean, dictionary, noisy, mask = _one_wrong_pixel()
    out = R.crf_potts(noisy, mask, dictionary)
    assert (out[mask] == clean[mask]).mean() > 0.99 and out[15, 15] == 1 and (out[~mask] == 0).all()


def test_crf_potts_minimises_on_a_chain():
    """Three pixels in a row: alpha-expansion finds the brute-force minimum of the part-level Potts energy."""
    dictionary = R.PatchDictionary(R.cut_patches(_clean_map()[None]), approximate=False)
    mask = np.zeros((48, 48), bool)
    mask[20, 22:25] = True
    noisy = _clean_map()
    positions, distances, patches = R.candidates(noisy, mask, dictionary)
    out = R.crf_potts(noisy, mask, dictionary, weight=50.0)
    labels = out[mask] - 1
    parts = R.LABELS - 1
    centre = patches[:, :, 13, 13].astype(int)
    unary = np.full((3, parts), float(27 * 27 + 1))
    for p, k in itertools.product(range(3), range(R.CANDIDATES)):
        if centre[p, k] > 0:
            unary[p, centre[p, k] - 1] = min(unary[p, centre[p, k] - 1], distances[p, k])
    edges = np.array([[0, 1], [1, 2]])
    best = min(_energy_potts(np.array(c), unary, edges, 50.0) for c in itertools.product(range(parts), repeat=3))
    assert _energy_potts(labels, unary, edges, 50.0) == pytest.approx(best)


def test_overlap_costs_hand_made():
    a = np.zeros((27, 27), np.uint8)
    b = a.copy()
    b[:, 0] = 3                  # differs from a only in its first column
    patches = np.stack([np.stack([a, b]), np.stack([a, b])])       # 2 pixels x 2 candidates
    right = R.overlap_costs(patches, np.array([[0, 1]]), np.array([0]))[0]
    # pixel 0's patch columns 1..26 against pixel 1's columns 0..25: b's first column is in the overlap
    # only as pixel 1's candidate
    assert right.tolist() == [[0, 27], [0, 27]]
    down = R.overlap_costs(patches, np.array([[0, 1]]), np.array([1]))[0]
    assert down.tolist() == [[0, 26], [26, 0]]


def test_crf_overlap_tiny_case_and_energy():
    clean, dictionary, noisy, mask = _one_wrong_pixel()
    out = R.crf_overlap(noisy, mask, dictionary)
    assert (out[mask] == clean[mask]).mean() > 0.99 and (out[~mask] == 0).all()


def _brute(unary, edges, pair):
    return min(R._energy(np.array(c), unary, edges, pair)
               for c in itertools.product(range(unary.shape[1]), repeat=len(unary)))


def test_expansion_on_tiny_energies():
    rng = np.random.default_rng(3)
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])          # a 2 x 2 grid
    unary = rng.uniform(0, 5, (4, 4))
    potts = np.broadcast_to(3.0 * (1 - np.eye(4)), (4, 4, 4)).copy()   # metric: moves need no truncation
    labels, energy = R.expansion(unary, edges, potts)
    assert energy == pytest.approx(R._energy(labels, unary, edges, potts))
    assert energy == pytest.approx(_brute(unary, edges, potts))
    # a table per edge, not a metric (as the patch-overlap term): never above the start, a true energy
    tables = rng.uniform(0, 4, (4, 4, 4))
    start = R._energy(unary.argmin(1), unary, edges, tables)
    labels, energy = R.expansion(unary, edges, tables)
    assert energy <= start + 1e-12 and energy == pytest.approx(R._energy(labels, unary, edges, tables))
    assert energy <= 1.5 * _brute(unary, edges, tables)
