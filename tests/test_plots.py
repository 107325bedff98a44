"""handlib.plots (curves, bars, learning curves, 3D skeletons) and the conventions' bones they draw."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from handlib import plots  # noqa: E402
from handlib.data.nyu import EVAL_JOINT_IDS  # noqa: E402
from handlib.joints import CANONICAL_PARENTS, CONVENTIONS, SOURCE_CONVENTIONS, get_convention  # noqa: E402
from handlib.metrics import success_curve  # noqa: E402

ALL_CONVENTIONS = sorted(CONVENTIONS) + sorted(SOURCE_CONVENTIONS)
CHAPTER_NYU_BONES = ((0, 1), (1, 13), (2, 3), (3, 13), (4, 5), (5, 13), (6, 7), (7, 13), (8, 9), (9, 10),
                     (10, 13), (11, 13), (12, 13))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- bones --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_CONVENTIONS)
def test_bones_form_one_tree_over_all_joints(name):
    conv = get_convention(name)
    j, bones = conv.num_joints, conv.bones
    assert len(bones) == j - 1
    assert all(0 <= a < j and 0 <= b < j and a != b for a, b in bones)
    # Every joint but the root is a child exactly once; from the root, parent -> child reaches all.
    children = [b for _, b in bones]
    assert len(set(children)) == j - 1
    (root,) = set(range(j)) - set(children)
    reached, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for a, b in bones:
            if a == parent and b not in reached:
                reached.add(b)
                frontier.append(b)
    assert reached == set(range(j))


def _named(conv, a, b):
    return frozenset((conv.joint_names.index(a), conv.joint_names.index(b)))


def test_named_bones():
    nyu, icvl, msra, h17, nyu36 = (get_convention(n) for n in ("nyu", "icvl", "msra", "hands17", "nyu36"))
    # NYU-14: exactly the CrossInfoNet chapter's skeleton, as unordered pairs.
    assert {frozenset(b) for b in nyu.bones} == {frozenset(b) for b in CHAPTER_NYU_BONES}
    assert (nyu.joint_names.index("Thumb.R2"), nyu.joint_names.index("Thumb.T")) in nyu.bones
    assert (nyu.joint_names.index("Palm"), nyu.joint_names.index("Wrist1")) in nyu.bones
    assert _named(icvl, "Palm", "Index.R") in {frozenset(b) for b in icvl.bones}
    assert (icvl.joint_names.index("Ring.M"), icvl.joint_names.index("Ring.T")) in icvl.bones
    assert (msra.joint_names.index("Wrist"), msra.joint_names.index("Thumb.R")) in msra.bones
    assert (msra.joint_names.index("Little.D"), msra.joint_names.index("Little.T")) in msra.bones
    assert (h17.joint_names.index("TMCP"), h17.joint_names.index("TPIP")) in h17.bones
    assert (h17.joint_names.index("Wrist"), h17.joint_names.index("PMCP")) in h17.bones
    assert (nyu36.joint_names.index("TH_KNU3_B"), nyu36.joint_names.index("TH_KNU3_A")) in nyu36.bones
    assert (nyu36.joint_names.index("PALM_3"), nyu36.joint_names.index("F4_KNU1_B")) in nyu36.bones


@pytest.mark.parametrize("name", ["full", "msra", "hands17", "icvl"])
def test_bones_agree_with_the_canonical_skeleton(name):
    """Mapped through from_canonical, every bone joins a joint to its nearest canonical ancestor
    present in the convention (ICVL: the palm point stands in for the wrist)."""
    conv = get_convention(name)
    where = {c: i for i, c in enumerate(conv.from_canonical)}
    expected = set()
    for i, c in enumerate(conv.from_canonical):
        p = CANONICAL_PARENTS[c] if c < 21 else -1
        while p >= 0 and p not in where:
            p = CANONICAL_PARENTS[p]
        if p >= 0:
            expected.add((where[p], i))
        elif c != 0 and name == "icvl" and c != 24:
            expected.add((0, i))                     # digit roots hang off ICVL's palm joint
    assert set(conv.bones) == expected


def test_nyu36_names_and_mapping_match_the_14_evaluated_joints():
    nyu36, nyu = get_convention("nyu36"), get_convention("nyu")
    assert nyu36.num_joints == 36 and len(set(nyu36.joint_names)) == 36
    assert nyu36.joint_names[:6] == ("F1_KNU3_A", "F1_KNU3_B", "F1_KNU2_A", "F1_KNU2_B", "F1_KNU1_A", "F1_KNU1_B")
    assert nyu36.joint_names[24] == "TH_KNU3_A" and nyu36.joint_names[30:] == tuple(f"PALM_{i}" for i in range(1, 7))
    # Restricted to the evaluated ids, the synthetic mapping is the NYU-14 one.
    assert tuple(nyu36.from_canonical[i] for i in EVAL_JOINT_IDS) == nyu.from_canonical
    assert sorted(nyu36.palm + nyu36.finger) == list(range(36))
    assert "nyu36" not in CONVENTIONS                  # a source order, not an evaluation one
    with pytest.raises(ValueError, match="nyu36"):
        get_convention("nyu37")


# --- series styles, success curves, per-joint bars ----------------------------------------------

def test_series_styles_are_distinct():
    for n in (1, 10, 12, 20, 45):
        styles = plots.series_styles(n)
        assert len({(s["color"], s["linestyle"]) for s in styles}) == n
    assert len({s["color"] for s in plots.series_styles(20)}) == 20
    assert plots.series_styles(3)[0]["color"] == "#1f77b4"     # C0 first


def test_success_curves_twelve_labels_mean_and_band():
    gen = torch.Generator().manual_seed(0)
    errors = {f"variant {i}": [torch.rand(40, 14, generator=gen, dtype=torch.float64) * (20 + 5 * i)
                               for _ in range(3)] for i in range(12)}
    errors["single"] = torch.rand(40, 14, generator=gen, dtype=torch.float64) * 30
    fig = plots.success_curves(errors)
    ax = fig.axes[0]
    assert len(ax.lines) == 13
    assert len({(line.get_color(), line.get_linestyle()) for line in ax.lines}) == 13
    assert len({line.get_color() for line in ax.lines}) == 13
    assert len(ax.collections) == 12                           # min-max band only with several seeds
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(errors)
    # The line is the mean over seeds of the per-seed curves, in percent.
    t = torch.arange(0, 81, dtype=torch.float64)
    expected = 100 * torch.stack([success_curve(e, t) for e in errors["variant 3"]]).mean(0)
    assert np.allclose(ax.lines[3].get_ydata(), expected.numpy())
    assert np.allclose(ax.lines[12].get_ydata(), 100 * success_curve(errors["single"], t).numpy())


def test_success_curves_hand_computed_and_into_given_axes():
    # Two frames: worst joints 5 and 30 mm -> 0 % below 5, 50 % from 5 to 29, 100 % from 30.
    e = torch.tensor([[1.0, 5.0], [30.0, 2.0]])
    fig, ax = plt.subplots()
    assert plots.success_curves({"a": e}, thresholds=[4, 5, 29, 30], ax=ax) is fig
    assert ax.lines[0].get_ydata().tolist() == [0.0, 50.0, 50.0, 100.0]
    # mean-frame: frame means 3 and 16 mm.
    fig = plots.success_curves({"a": e}, thresholds=[2, 3, 16], variant="mean-frame")
    assert fig.axes[0].lines[0].get_ydata().tolist() == [0.0, 50.0, 100.0]
    with pytest.raises(ValueError, match="max-frame"):
        plots.success_curves({"a": e}, variant="worst")


def test_per_joint_errors_bars_and_mean_group():
    # Distinct per-joint means: joint j of seed s has error (j + 1) * 10 + s on every frame.
    runs = [torch.arange(1, 4, dtype=torch.float64).repeat(5, 1) * 10 + s for s in (0, 2)]
    fig = plots.per_joint_errors({"A": runs, "B": runs[0] * 2}, ["j0", "j1", "j2"])
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 2 * 4                                   # 2 labels x (3 joints + Mean)
    a = [b.get_height() for b in bars[:4]]
    assert a == pytest.approx([11.0, 21.0, 31.0, 21.0])         # seeds averaged; Mean = mean of joints
    b = [b.get_height() for b in bars[4:]]
    assert b == pytest.approx([20.0, 40.0, 60.0, 40.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["j0", "j1", "j2", "Mean"]
    assert bars[0].get_facecolor() != bars[4].get_facecolor()
    with pytest.raises(ValueError, match="3 joints"):
        plots.per_joint_errors({"A": runs}, ["j0", "j1"])


# --- learning curves ----------------------------------------------------------------------------

def _run(variant, seed, batch=16, extra=None, samples_seen=False):
    history = [{"epoch": e, "lr": 1e-3, "train": {"total": 1.0 / e}, "val_mean_error_mm": 30.0 - e - seed}
               for e in (1, 2, 3)]
    if samples_seen:
        for h in history:
            h["samples_seen"] = 1000 * h["epoch"]
    return {"variant": variant, "seed": seed, "recipe": {"batch_size": batch}, "history": history,
            "extra": extra or {}}


def test_learning_curves_samples_seen_from_recipe_and_train_size():
    runs = [_run(v, s, extra={"train_size": 100}) for v in ("base", "cross") for s in (0, 1, 2)]
    fig = plots.learning_curves(runs)
    ax = fig.axes[0]
    assert len(ax.lines) == 6 and ax.get_xscale() == "log"
    # 100 // 16 = 6 whole batches of 16 = 96 samples per epoch.
    assert ax.lines[0].get_xdata().tolist() == [96.0, 192.0, 288.0]
    assert ax.lines[1].get_ydata().tolist() == [28.0, 27.0, 26.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "cross"]
    assert ax.lines[0].get_color() == ax.lines[2].get_color() != ax.lines[3].get_color()


def test_learning_curves_samples_seen_and_epoch_fallback():
    fig = plots.learning_curves({"a": _run("x", 0, samples_seen=True), "b": [_run("y", 0, samples_seen=True)]})
    ax = fig.axes[0]
    assert ax.lines[0].get_xdata().tolist() == [1000.0, 2000.0, 3000.0] and ax.get_xscale() == "log"
    # One run with no way to count samples: every run against epochs, and the axis says so.
    fig = plots.learning_curves([_run("a", 0, extra={"steps_per_epoch": 5}), _run("b", 0)])
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and "epoch" in ax.get_xlabel()
    assert ax.lines[0].get_xdata().tolist() == [1.0, 2.0, 3.0]
    # Bare histories: one colour and legend entry each.
    fig = plots.learning_curves([_run("a", 0)["history"], _run("a", 1)["history"]])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["run 0", "run 1"]


def test_learning_curves_mark_the_chosen_budget():
    fig = plots.learning_curves({"a": _run("x", 0, samples_seen=True)}, budget=3000)
    ax = fig.axes[0]
    assert list(ax.lines[-1].get_xdata()) == [3000, 3000] and ax.lines[-1].get_linestyle() == "--"
    assert "chosen budget (3,000 samples)" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="budget"):
        plots.learning_curves([_run("a", 0)["history"]], budget=100)


# --- 3D skeletons -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_CONVENTIONS)
def test_skeletons_3d_traces_per_label_and_frame(name):
    conv = get_convention(name)
    rng = np.random.default_rng(0)
    frames = [{"truth": rng.normal(size=(conv.num_joints, 3)) * 30,
               "prediction": torch.from_numpy(rng.normal(size=(conv.num_joints, 3)) * 30)} for _ in range(3)]
    fig = plots.skeletons_3d(frames, name, titles=["frame 1: worst 40 mm", "frame 2", "frame 3"])
    lines = [t for t in fig.data if t.mode == "lines"]
    markers = [t for t in fig.data if t.mode == "markers"]
    assert len(lines) == len(markers) == 2 * 3                 # one of each per label per frame
    assert {t.scene for t in lines} == {"scene", "scene2", "scene3"}
    # Bones: 2 end points + 1 gap per bone; the first bone's ends are its parent's and child's joints.
    first = lines[0]
    assert len(first.x) == 3 * len(conv.bones) and first.x[2] is None
    a, b = conv.bones[0]
    assert first.x[0] == pytest.approx(frames[0]["truth"][a, 0]) and first.z[1] == pytest.approx(frames[0]["truth"][b, 2])
    assert list(markers[0].text) == list(conv.joint_names)
    assert sum(bool(t.showlegend) for t in fig.data) == 2      # one legend entry per label
    assert fig.layout.scene.aspectmode == "data" and fig.layout.scene3.aspectmode == "data"


def test_skeleton_3d_single_frame_titles_and_shape_check():
    conv = get_convention("nyu")
    pts = np.arange(conv.num_joints * 3, dtype=float).reshape(-1, 3)
    fig = plots.skeleton_3d({"truth": pts, "a": pts + 1, "b": pts + 2}, "nyu", title="one frame")
    assert len(fig.data) == 6 and fig.layout.title.text == "one frame"
    assert len({t.line.color for t in fig.data if t.mode == "lines"}) == 3
    # Long subplot titles are wrapped, and the top margin grows with them.
    long = ["frame 1234: worst joint 45 mm, mean 20 mm, subject B, synthetic test split"] * 3
    fig = plots.skeletons_3d([{"t": pts}] * 3, conv, titles=long)
    assert all("<br>" in a.text for a in fig.layout.annotations)
    assert fig.layout.margin.t >= 20 + 16 * 2
    with pytest.raises(ValueError, match=r"\(14, 3\)"):
        plots.skeleton_3d({"t": pts[:5]}, "nyu")
    with pytest.raises(ValueError, match="2 titles"):
        plots.skeletons_3d([{"t": pts}], "nyu", titles=["a", "b"])


def test_joint_groups_colours_each_joint_by_its_group():
    conv = get_convention("nyu")
    uv = torch.rand(conv.num_joints, 2) * 64
    groups = [j % 3 for j in range(conv.num_joints)]
    fig = plots.joint_groups(uv, groups, "nyu", names=True, title="t")
    ax = fig.axes[0]
    scatters = ax.collections
    assert [len(c.get_offsets()) for c in scatters] == [sum(1 for g in groups if g == k) for k in range(3)]
    assert np.allclose(scatters[1].get_offsets(), uv[[j for j, g in enumerate(groups) if g == 1]].numpy())
    assert len(ax.lines) == len(conv.bones) and ax.yaxis_inverted()
    with pytest.raises(ValueError, match="14 groups"):
        plots.joint_groups(uv, groups[:-1], "nyu")
    plt.close(fig)
