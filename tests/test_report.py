"""handlib.report: paper numbers, seed statistics, paired effects and verdicts on hand-built records."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from handlib import report

LABELS = {"base": "Base", "base_hm": "Base+HM", "cross": "Cross", "cross_hm": "Cross+HM"}


def record(variant, seed, value, dataset="synthetic"):
    """The fields of a results record these helpers read."""
    return {"variant": variant, "seed": seed, "dataset": dataset, "model": "crossinfonet",
            "test": {"mean_error_mm": value}, "best_val": {"mean_error_mm": value + 1.0}}


# --- paper_numbers ------------------------------------------------------------------------------

def test_paper_numbers_selects_rows_of_the_csv():
    nyu = report.paper_numbers("crossinfonet", "Table1", dataset="NYU")
    assert list(nyu.columns) == ["paper", "table", "dataset", "method", "metric", "value", "unit"]
    assert dict(zip(nyu["method"], nyu["value"])) == {"Base": 11.17, "Base+HM": 10.84, "Cross": 10.57,
                                                      "Cross+HM": 10.08}
    both = report.paper_numbers("crossinfonet", "Table1", dataset=["NYU", "ICVL"], method="Base")
    assert dict(zip(both["dataset"], both["value"])) == {"ICVL": 9.28, "NYU": 11.17}
    # Table2 also holds non-error rows ("input_is_3d"); the default metric keeps only mean errors.
    t2 = report.paper_numbers("crossinfonet", "Table2", dataset="NYU", method="DeepPrior++")
    assert len(t2) == 1 and t2["value"].item() == 12.24
    assert len(report.paper_numbers("crossinfonet", "Table2", metric=None, method="DeepPrior++")) > 1


def test_paper_numbers_rejects_unknown_paper_and_table():
    with pytest.raises(ValueError, match="crossinfonet"):
        report.paper_numbers("crossinfo")
    with pytest.raises(ValueError, match="Table1"):
        report.paper_numbers("crossinfonet", "Table9")
    assert report.paper_numbers("crossinfonet", "Table1", dataset="MSRA").empty


# --- seed_summary -------------------------------------------------------------------------------

def test_seed_summary_mean_std_ddof1_and_one_seed_nan():
    recs = [record("a", 0, 1.0), record("a", 1, 2.0), record("a", 2, 6.0), record("b", 5, 4.0)]
    s = report.seed_summary(recs).set_index("variant")
    assert s.loc["a", "mean"] == pytest.approx(3.0)
    # sample std: sqrt(((1-3)^2 + (2-3)^2 + (6-3)^2) / 2) = sqrt(7)
    assert s.loc["a", "std"] == pytest.approx(math.sqrt(7.0))
    assert s.loc["a", "n"] == 3 and s.loc["a", "seeds"] == [0, 1, 2]
    assert s.loc["b", "mean"] == 4.0 and math.isnan(s.loc["b", "std"]) and s.loc["b", "n"] == 1
    # another metric path and grouping
    v = report.seed_summary(recs, by=("variant", "dataset"), metric="best_val.mean_error_mm")
    assert list(v.columns[:2]) == ["variant", "dataset"] and v["mean"].tolist() == pytest.approx([4.0, 5.0])


# --- paper_vs_ours ------------------------------------------------------------------------------

def test_paper_vs_ours_puts_the_right_paper_row_beside_each_variant():
    recs = [record(v, s, 20.0 + i + 0.1 * s) for i, v in enumerate(LABELS) for s in (0, 1, 2)]
    t = report.paper_vs_ours(recs, "crossinfonet", "Table1", LABELS)
    assert list(t.index) == list(LABELS) and list(t["method"]) == list(LABELS.values())
    assert list(t.columns) == ["method", "mean", "std", "n", "paper NYU", "paper ICVL"]
    assert t["paper NYU"].tolist() == [11.17, 10.84, 10.57, 10.08]
    assert t["paper ICVL"].tolist() == [9.28, 9.08, 8.79, 8.48]
    assert t.loc["cross", "mean"] == pytest.approx(22.1) and t.loc["cross", "std"] == pytest.approx(0.1)
    assert t["n"].tolist() == [3, 3, 3, 3]


def test_paper_vs_ours_missing_variant_dataset_and_bad_label():
    recs = [record("base", 0, 25.0)]
    t = report.paper_vs_ours(recs, "crossinfonet", "Table1", {"base": "Base", "cross": "Cross"},
                             datasets=("NYU", "MSRA"))
    assert t.loc["cross", "n"] == 0 and math.isnan(t.loc["cross", "mean"])
    assert math.isnan(t.loc["base", "std"])                              # one seed
    assert math.isnan(t.loc["base", "paper MSRA"])                       # Table1 has no MSRA
    with pytest.raises(ValueError, match="Crosss"):
        report.paper_vs_ours(recs, "crossinfonet", "Table1", {"base": "Crosss"})


# --- verdict ------------------------------------------------------------------------------------

@pytest.mark.parametrize("diff, p, paper_diff, expected", [
    (-1.0, 0.01, None, "yes"),                               # an improvement, p < 0.05
    (-0.7, 0.2, None, "same sign, within noise"),
    (0.7, 0.2, None, "no: opposite sign, within noise"),
    (1.0, 0.01, None, "no: reversed beyond noise"),
    (-0.8, 0.05, None, "same sign, within noise"),           # p = 0.05 exactly is not below 5 %
    (0.0, 1.0, None, "no: opposite sign, within noise"),
    (-5.0, None, None, "one seed: cannot tell"),
    (-5.0, float("nan"), None, "one seed: cannot tell"),
    (1.0, 0.01, 2.5, "yes"),                                  # the paper's effect is an increase
    (-1.0, 0.01, 2.5, "no: reversed beyond noise"),
    (-1.0, 0.01, 0.0, "yes"),                                 # a zero paper effect gives no sign
])
def test_verdict_cases(diff, p, paper_diff, expected):
    assert report.verdict(diff, p, paper_diff) == expected


def test_verdict_for_a_higher_is_better_metric():
    assert report.verdict(1.0, 0.01, lower_is_better=False) == "yes"
    assert report.verdict(-1.0, 0.01, lower_is_better=False) == "no: reversed beyond noise"


def test_t_test_matches_scipy_and_three_seeds_need_4_30_standard_errors():
    from scipy import stats

    d = [-1.0, -0.2, -0.9]
    test = report.t_test(d)
    reference = stats.ttest_rel([1.0, 2.0, 3.0], [2.0, 2.2, 3.9])   # the same differences
    assert test["t"] == pytest.approx(reference.statistic) and test["p"] == pytest.approx(reference.pvalue)
    assert report.critical_t(3) == pytest.approx(4.3027, abs=1e-4)
    assert test["ci_high"] - test["diff"] == pytest.approx(4.3027 * test["se"], rel=1e-4)
    assert report.t_test([-1.0, -1.0, -1.0])["p"] == 0.0 and math.isnan(report.t_test([-1.0])["p"])


def test_verdict_at_three_seeds_needs_the_t_critical_value():
    # diff / SE = 3: "beyond two standard errors", yet short of 4.30 SE at 2 degrees of freedom.
    d = np.array([-1.0, -2.0, -3.0]) + 2.0 - 3.0 * (1.0 / math.sqrt(3))     # mean -3/sqrt(3), SE 1/sqrt(3)
    test = report.t_test(d)
    assert abs(test["t"]) == pytest.approx(3.0) and 0.05 < test["p"] < 0.1
    assert report.verdict(test["diff"], test["p"]) == "same sign, within noise"


def test_holm_adjusts_step_down_and_keeps_nan():
    adjusted = report.holm([0.01, 0.04, float("nan"), 0.03])
    assert adjusted[0] == pytest.approx(0.03) and adjusted[3] == pytest.approx(0.06)
    assert adjusted[1] == pytest.approx(0.06) and math.isnan(adjusted[2])


def test_rule_sentence_states_the_seed_count_and_critical_value():
    recs = [record(v, s, 10.0 + s + (v == "b") * 0.1 * (s + 1)) for v in "ab" for s in range(3)]
    e = report.paired_effects(recs, [("x", "a", "b")])
    sentence = report.rule_sentence(e)
    assert "3 paired seeds" in sentence and "4.30" in sentence and "2 degrees of freedom" in sentence


def test_error_decomposition_splits_in_plane_and_depth():
    import torch

    truth = torch.zeros(4, 2, 3)
    a = truth.clone(); a[..., 0] = 3.0; a[..., 2] = 4.0          # xy 3, z 4, 3D 5
    b = truth.clone(); b[..., 1] = 6.0; b[..., 2] = 8.0          # xy 6, z 8, 3D 10
    table = report.error_decomposition({("v", 0): (a, truth), ("v", 1): (b, truth), ("w", 0): (a, truth)})
    assert table.loc["v", "error_3d"] == pytest.approx(7.5) and table.loc["v", "error_xy"] == pytest.approx(4.5)
    assert table.loc["v", "error_z"] == pytest.approx(6.0) and table.loc["v", "n"] == 2
    assert table.loc["v", "error_z_std"] == pytest.approx(np.std([4.0, 8.0], ddof=1))
    assert math.isnan(table.loc["w", "error_3d_std"])


# --- paired_effects -----------------------------------------------------------------------------

def test_paired_se_is_small_when_the_seed_noise_is_shared():
    # Seed effects of +-2 mm shared by both variants; B = A + 0.5 + tiny per-seed noise.
    seed_level = np.array([20.0, 23.0, 18.0, 21.5, 19.0])
    tiny = np.array([0.01, -0.02, 0.015, -0.005, 0.0])
    recs = ([record("A", s, float(v)) for s, v in enumerate(seed_level)]
            + [record("B", s, float(v + 0.5 + t)) for s, v, t in zip(range(5), seed_level, tiny)])
    e = report.paired_effects(recs, [("B vs A", "B", "A")]).loc["B vs A"]
    d = 0.5 + tiny
    assert e["per_seed"] == pytest.approx(d.tolist()) and e["seeds"] == [0, 1, 2, 3, 4]
    assert e["diff"] == pytest.approx(d.mean())
    assert e["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(5))          # ~0.006
    sa, sb = seed_level.std(ddof=1), (seed_level + d).std(ddof=1)
    assert e["se_unpaired"] == pytest.approx(math.sqrt(sa ** 2 / 5 + sb ** 2 / 5))   # ~1.2
    assert e["se"] < 0.01 < 1.0 < e["se_unpaired"]
    assert e["n_pairs"] == 5
    # B is worse by 0.5 mm beyond the (paired) noise: an expected improvement reversed.
    assert e["verdict"] == "no: reversed beyond noise"
    # The same change the other way round is a clear improvement.
    assert report.paired_effects(recs, [("A vs B", "A", "B")]).loc["A vs B", "verdict"] == "yes"


def test_paired_effects_use_only_shared_seeds_and_the_paper_difference():
    recs = [record("base", 0, 10.0), record("base", 1, 12.0), record("base", 2, 11.0), record("base", 7, 99.0),
            record("cross", 0, 9.0), record("cross", 1, 11.5), record("cross", 2, 10.0), record("cross", 3, 0.0)]
    e = report.paired_effects(recs, [("cross", "cross", "base")], paper="crossinfonet", table="Table1",
                              labels=LABELS)
    row = e.loc["cross"]
    assert row["seeds"] == [0, 1, 2] and row["per_seed"] == pytest.approx([-1.0, -0.5, -1.0])
    assert row["diff"] == pytest.approx(-2.5 / 3)
    assert row["se"] == pytest.approx(np.std([-1.0, -0.5, -1.0], ddof=1) / math.sqrt(3))
    assert row["paper NYU"] == pytest.approx(10.57 - 11.17) and row["paper ICVL"] == pytest.approx(8.79 - 9.28)
    assert row["verdict"] == "yes"                       # -0.83 with SE 0.17: t = -5, p = 0.038
    assert row["p"] == pytest.approx(0.0377, abs=1e-3)
    assert list(e.columns) == ["better", "worse", "diff", "se", "ci_low", "ci_high", "t", "p", "p_holm",
                               "se_unpaired", "n_pairs", "seeds", "per_seed", "paper NYU", "paper ICVL", "verdict"]


def test_paired_effects_one_seed_and_errors():
    recs = [record("a", 0, 1.0), record("b", 0, 2.0)]
    e = report.paired_effects(recs, [("x", "a", "b")]).loc["x"]
    assert e["diff"] == -1.0 and math.isnan(e["se"]) and math.isnan(e["se_unpaired"])
    assert e["verdict"] == "one seed: cannot tell"
    with pytest.raises(ValueError, match="variant 'c'"):
        report.paired_effects(recs, [("x", "a", "c")])
    with pytest.raises(ValueError, match="two records"):
        report.paired_effects(recs + [record("a", 0, 1.5, dataset="nyu")], [("x", "a", "b")])


# --- verdict_sentence ---------------------------------------------------------------------------

def test_verdict_sentence_counts_each_kind():
    df = pd.DataFrame({"verdict": ["yes", "same sign, within noise", "same sign, within noise",
                                   "no: reversed beyond noise"]})
    assert report.verdict_sentence(df) == (
        "Of the paper's 4 improvements, 1 reproduces (p < 0.05), 2 point the same way within "
        "the noise, and 1 does not reproduce.")
    df = pd.DataFrame({"verdict": ["no: opposite sign, within noise", "no: reversed beyond noise", "yes"]})
    assert report.verdict_sentence(df) == (
        "Of the paper's 3 improvements, 1 reproduces (p < 0.05), none point the same way within "
        "the noise, and 2 do not reproduce.")
    one = pd.DataFrame({"verdict": ["one seed: cannot tell"] * 2})
    assert "none of the paper's 2 improvements can be judged" in report.verdict_sentence(one)
    assert report.verdict_sentence(df, whose="the design's").startswith("Of the design's 3 improvements, 1 reproduces")
    assert "none of the design's 2 improvements" in report.verdict_sentence(one, whose="the design's")


# --- last_doubling ------------------------------------------------------------------------------

def _curved(variant, seed, errors, samples=(100, 200, 400, 800)):
    return {"variant": variant, "seed": seed,
            "curve": [{"samples_seen": n, "val": {"mean_error_mm": e}} for n, e in zip(samples, errors)]}


def test_last_doubling_reads_the_curve_at_half_the_samples_on_a_log_axis():
    runs = [_curved("base", 0, [40, 30, 24, 22]), _curved("base", 1, [40, 30, 26, 22]),
            _curved("cross", 0, [40, 30, 20, 20], samples=(100, 300, 900, 1800))]
    table = report.last_doubling(runs)
    assert table.loc["base", "samples"] == 800 and table.loc["base", "n"] == 2
    assert table.loc["base", "gain"] == pytest.approx(3.0)            # (24 - 22 + 26 - 22) / 2
    assert table.loc["base", "gain_std"] == pytest.approx(math.sqrt(2))
    assert table.loc["cross", "gain"] == pytest.approx(0.0)            # 900 = half of 1800: flat
    # half of 1600 samples, 800, lies half-way between 400 and 1600 on a log axis
    half = report.last_doubling([_curved("x", 0, [40, 30, 20], samples=(100, 400, 1600))])
    assert half.loc["x", "val_at_half"] == pytest.approx(25.0) and half.loc["x", "gain"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="base seed 3 has no learning curve"):
        report.last_doubling([{"variant": "base", "seed": 3, "history": []}])


def test_budget_change_pairs_the_two_budgets_by_seed():
    def run(variant, seed, errors, test, samples):
        return {**_curved(variant, seed, errors, samples), "test": {"mean_error_mm": test}}
    previous = [run("base", s, [40, 30, 24, 22], 22.0 + s, (100, 200, 400, 800)) for s in (0, 1, 2)]
    current = [run("base", s, [40, 26, 22, 21], 20.0 + s + 0.1 * (s == 2), (200, 400, 800, 1600)) for s in (0, 1, 2)]
    table = report.budget_change(previous, current)
    row = table.loc["base"]
    assert (row["samples_before"], row["samples_now"], row["n_pairs"]) == (800, 1600, 3)
    assert row["gain_before"] == pytest.approx(2.0) and row["gain_now"] == pytest.approx(1.0)
    assert row["diff"] == pytest.approx((-2.0 - 2.0 - 1.9) / 3)
    assert row["p"] == pytest.approx(stats.ttest_rel([20.0, 21.0, 22.1], [22.0, 23.0, 24.0]).pvalue)
    with pytest.raises(ValueError, match="'cross' has no run at the previous budget"):
        report.budget_change(previous, current + [run("cross", 0, [40, 30, 20, 20], 19.0, (200, 400, 800, 1600))])


def test_step_profiles_put_each_group_share_beside_the_speed_of_the_same_setting():
    from handlib.report import step_profiles

    groups = {"convolutions": 0.6, "optimiser step": 0.4}
    profiles = [{"variant": "base", "precision": "float32", "fused_optimizer": False, "step_ms": 100.0, "groups": groups},
                {"variant": "base", "precision": "bfloat16", "fused_optimizer": True, "step_ms": 50.0, "groups": groups}]
    trains = [{"variant": "base", "precision": "bfloat16", "fused_optimizer": True, "samples_per_s": 64.0,
               "roofline_fraction": 0.55, "peak_kernel": "conv3x3"}]
    table = step_profiles(profiles, trains, labels={"base": "Base"})
    assert table.loc[("Base", "float32", "per-tensor"), "convolutions %"] == 60.0
    assert table.loc[("Base", "bfloat16", "fused"), "roofline fraction"] == 0.55
    assert pd.isna(table.loc[("Base", "float32", "per-tensor"), "samples/s"])   # not measured: not invented
