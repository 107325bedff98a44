"""Chapter reports: the paper's numbers beside ours, seed statistics and whether an effect reproduces.

Every chapter ends the same way (house style, "A chapter's shape" step 7): the paper's table
regenerated, mean ± std over seeds beside the paper's values, the paper's effects (one variant
minus another) measured on our runs, and a plain-words verdict. The tables are pandas DataFrames so
they render as HTML tables in the built book.

Inputs are results records (the JSON dicts of :mod:`handlib.results`) and the repository's
``data/paper_tables.csv`` (columns paper, table, dataset, method, metric, value, unit).

Statistics, stated once:

* mean ± std over seeds: the sample mean and the sample standard deviation (ddof 1; NaN for one
  seed) of the metric over the runs of one variant.
* An effect "better − worse" is measured per seed: d_s = m(better, seed s) − m(worse, seed s) on
  the seeds both variants have. Its estimate is mean(d); its **paired** standard error is
  std(d, ddof 1) / sqrt(n). Runs that share a seed share data order and initialisation noise, so
  pairing removes the part of the spread both variants have in common.
* The **unpaired** standard error sqrt(s_a²/n_a + s_b²/n_b) (Welch's) treats the two variants'
  runs as independent; it is shown beside the paired one for comparison, computed on the same
  paired seeds.
* The test is the **paired t test**: t = mean(d) / SE with n − 1 degrees of freedom, two-sided p
  value, and the 95 % interval mean(d) ± t₀.₉₇₅,ₙ₋₁ · SE. At 3 seeds (2 degrees of freedom) the
  critical value is 4.30, not the normal 1.96: "beyond two standard errors" is no 5 % test at
  that n. ``p_holm`` adjusts the p values of one table's effects for testing them together
  (Holm's step-down method).
* An effect "reproduces" when it has the expected sign and p < ``ALPHA`` (0.05); see :func:`verdict`
  and :func:`rule_sentence`, the sentence every chapter glues once beside its effects table.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from handlib.paths import REPO_ROOT
from handlib.results import metric_value, summarize

PAPER_TABLES = REPO_ROOT / "data" / "paper_tables.csv"
DEFAULT_METRIC = "test.mean_error_mm"

ALPHA = 0.05
YES = "yes"
SAME_SIGN = "same sign, within noise"
OPPOSITE_SIGN = "no: opposite sign, within noise"
REVERSED = "no: reversed beyond noise"
ONE_SEED = "one seed: cannot tell"
VERDICTS = (YES, SAME_SIGN, OPPOSITE_SIGN, REVERSED, ONE_SEED)


# --- the paper's numbers ------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _paper_tables() -> pd.DataFrame:
    if not PAPER_TABLES.is_file():
        raise FileNotFoundError(f"{PAPER_TABLES} is missing: the paper tables ship with the repository "
                                "checkout (data/paper_tables.csv)")
    return pd.read_csv(PAPER_TABLES, dtype={"value": float})


def _as_set(value) -> set | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def paper_numbers(paper: str, table: str | None = None, dataset: str | Iterable[str] | None = None,
                  metric: str | None = "mean_error", method: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Rows of ``data/paper_tables.csv`` for one paper, as printed in the paper.

    ``table``, ``dataset``, ``metric`` and ``method`` select rows (a string or several strings;
    None keeps all). Returns the csv's columns (paper, table, dataset, method, metric, value,
    unit) in file order with a fresh 0..n-1 index. An unknown ``paper`` or ``table`` raises a
    ValueError listing the valid ones; filters that match nothing return an empty frame.
    """
    rows = _paper_tables()
    mine = rows[rows["paper"] == paper]
    if mine.empty:
        raise ValueError(f"no paper {paper!r} in {PAPER_TABLES.name}; papers: {sorted(rows['paper'].unique())}")
    if table is not None and not (mine["table"] == table).any():
        raise ValueError(f"paper {paper!r} has no table {table!r}; tables: {sorted(mine['table'].unique())}")
    keep = np.ones(len(mine), dtype=bool)
    for column, wanted in (("table", table), ("dataset", dataset), ("metric", metric), ("method", method)):
        wanted = _as_set(wanted)
        if wanted is not None:
            keep &= mine[column].isin(wanted).to_numpy()
    return mine[keep].reset_index(drop=True)


# --- our numbers --------------------------------------------------------------------------------

def seed_summary(records: Sequence[dict], by: Sequence[str] = ("variant",),
                 metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Mean and sample std (ddof 1; NaN for one seed) of ``metric`` over seeds, one row per
    distinct ``by`` values (in first-seen order), with ``n`` runs and their sorted ``seeds``.

    ``metric`` is a dotted path into a record (``"test.mean_error_mm"``, ``"best_val.mean_error_mm"``);
    the numbers are :func:`handlib.results.summarize`'s."""
    by = tuple(by)
    rows = summarize(list(records), by=by, metric=metric)
    frame = pd.DataFrame(rows, columns=[*by, "mean", "std", "n", "seeds"])
    frame["std"] = frame["std"].astype(float)          # None (one seed) -> NaN
    frame["mean"] = frame["mean"].astype(float)
    frame["n"] = frame["n"].astype(int)
    return frame


def _by_variant_seed(records: Sequence[dict], metric: str) -> dict[str, dict[int, float]]:
    """{variant: {seed: metric}}; two records of one (variant, seed) are an error (mixed datasets?)."""
    table: dict[str, dict[int, float]] = {}
    for record in records:
        seeds = table.setdefault(record["variant"], {})
        if record["seed"] in seeds:
            raise ValueError(
                f"two records of variant {record['variant']!r}, seed {record['seed']}: filter the records "
                "to one model, dataset, convention and profile first (results.load_records(..., dataset=...))")
        seeds[record["seed"]] = metric_value(record, metric)
    return table


def paper_vs_ours(records: Sequence[dict], paper: str, table: str, labels: dict[str, str],
                  datasets: Sequence[str] = ("NYU", "ICVL"), metric: str = DEFAULT_METRIC,
                  paper_metric: str = "mean_error") -> pd.DataFrame:
    """The paper's table regenerated: one row per variant of ``labels`` (in its order), indexed by
    variant, with ``method`` (the paper's name for it), our ``mean``, ``std`` (ddof 1) and ``n``
    over seeds, then the paper's value per dataset as columns ``"paper NYU"``, ``"paper ICVL"``...

    ``labels`` maps our variant names to the paper's method names (``{"base": "Base", ...}``).
    A variant without records gets NaN and n = 0; a dataset the paper does not report for a method
    gets NaN; a method name found in no row of the table raises a ValueError (a typo)."""
    known = paper_numbers(paper, table, metric=paper_metric)
    unknown = [m for m in labels.values() if m not in set(known["method"])]
    if unknown:
        raise ValueError(f"{paper} {table} has no {paper_metric!r} row for method(s) {unknown}; "
                         f"methods: {sorted(known['method'].unique())}")
    ours = seed_summary([r for r in records if r["variant"] in labels], by=("variant",), metric=metric)
    ours = ours.set_index("variant").reindex(list(labels))
    ours["n"] = ours["n"].fillna(0).astype(int)
    frame = pd.DataFrame({"method": list(labels.values()), "mean": ours["mean"], "std": ours["std"],
                          "n": ours["n"]}, index=pd.Index(list(labels), name="variant"))
    values = known.set_index(["dataset", "method"])["value"]
    for dataset in datasets:
        frame[f"paper {dataset}"] = [values.get((dataset, m), np.nan) for m in labels.values()]
    return frame


# --- effects and verdicts -----------------------------------------------------------------------

def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def t_test(per_seed: Sequence[float]) -> dict:
    """The paired t test of differences ``per_seed`` against 0: {diff, se, t, dof, p, ci_low,
    ci_high} (95 % interval). Fewer than two differences: se, t, p and the interval are NaN. All
    differences equal and non-zero: se 0, p 0 (the interval is the point)."""
    from scipy import stats

    d = np.asarray(per_seed, dtype=float)
    n = len(d)
    out = {"diff": float(d.mean()) if n else math.nan, "se": math.nan, "t": math.nan, "dof": n - 1,
           "p": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if n < 2:
        return out
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = critical_t(n) * se
    out.update(se=se, ci_low=out["diff"] - half, ci_high=out["diff"] + half)
    if se == 0:
        out.update(t=math.copysign(math.inf, out["diff"]) if out["diff"] else math.nan,
                   p=0.0 if out["diff"] else 1.0)
    else:
        out["t"] = out["diff"] / se
        out["p"] = float(2 * stats.t.sf(abs(out["t"]), n - 1))
    return out


def paired_frame_errors(a, b, *, names: tuple[str, str] = ("a", "b")):
    """(S, F) per-frame errors of two models on the same seeds and test frames, as float arrays; a clear
    ValueError when they are not paired. ``a`` / ``b``: {seed: (pred, truth)} of (F, J, 3) mm; the seeds
    must be the same and each seed's truth identical (the same frames in the same order)."""
    from handlib.metrics import joint_errors

    first, second = names
    if set(a) != set(b):
        raise ValueError(f"{first} and {second} are not paired: seeds {sorted(a)} against {sorted(b)} "
                         "(a paired comparison needs the same seeds)")
    if not a:
        raise ValueError(f"{first} and {second} have no runs to compare")
    rows = {first: [], second: []}
    for seed in sorted(a):
        (pred_a, truth_a), (pred_b, truth_b) = a[seed], b[seed]
        if tuple(truth_a.shape) != tuple(truth_b.shape) or not bool((truth_a == truth_b).all()):
            raise ValueError(f"{first} and {second} are not paired: seed {seed}'s test frames differ "
                             f"({tuple(truth_a.shape)} against {tuple(truth_b.shape)} joints, or other "
                             "ground truth); a paired comparison needs the same frames in the same order")
        rows[first].append(joint_errors(pred_a, truth_a).double().mean(1).numpy())
        rows[second].append(joint_errors(pred_b, truth_b).double().mean(1).numpy())
    return np.stack(rows[first]), np.stack(rows[second])


def bootstrap_difference(errors_a, errors_b, *, resamples: int = 2000, seed: int = 0,
                         level: float = 0.95) -> dict:
    """Paired difference of two models' mean errors (a − b) with a bootstrap interval over test frames.

    ``errors_a`` / ``errors_b``: (S, F) per-frame errors on the same seeds and frames
    (:func:`paired_frame_errors`). Each seed's difference is paired frame by frame; the frames are
    resampled with replacement (the same resample for every seed), and the percentile interval of the
    seed-averaged difference is returned with the seed-level paired t test (:func:`t_test`): {diff,
    ci_low, ci_high, resamples, frames, seeds, p_seeds, ci_low_seeds, ci_high_seeds}."""
    a, b = np.asarray(errors_a, dtype=float), np.asarray(errors_b, dtype=float)
    a, b = (x[None] if x.ndim == 1 else x for x in (a, b))
    if a.shape != b.shape:
        raise ValueError(f"not paired: per-frame errors of shape {a.shape} against {b.shape} "
                         "(the same seeds and test frames are needed)")
    per_frame = (a - b).mean(0)                          # (F,) seed-averaged paired difference
    rng = np.random.default_rng(seed)
    frames = per_frame.shape[0]
    means = np.empty(resamples)
    for start in range(0, resamples, 500):               # 500 resamples at a time: bounded memory
        stop = min(resamples, start + 500)
        picks = rng.integers(0, frames, size=(stop - start, frames))
        means[start:stop] = per_frame[picks].mean(1)
    tail = (1 - level) / 2 * 100
    seeds = t_test((a - b).mean(1))
    return {"diff": float(per_frame.mean()), "ci_low": float(np.percentile(means, tail)),
            "ci_high": float(np.percentile(means, 100 - tail)), "resamples": resamples, "frames": frames,
            "seeds": a.shape[0], "p_seeds": seeds["p"], "ci_low_seeds": seeds["ci_low"],
            "ci_high_seeds": seeds["ci_high"]}


def difference_sentence(first: str, second: str, stats: dict, unit: str = "mm") -> str:
    """A bootstrap difference (:func:`bootstrap_difference`, ``first`` − ``second``) in words: which is
    better, by how much, and whether the frames' interval and the seeds' t test both exclude zero."""
    diff, low, high = stats["diff"], stats["ci_low"], stats["ci_high"]
    better, worse = (first, second) if diff < 0 else (second, first)
    frames_clear = low > 0 or high < 0
    seeds_clear = stats["p_seeds"] < ALPHA if np.isfinite(stats["p_seeds"]) else False
    interval = f"95 % interval over test frames {low:+.2f} to {high:+.2f} {unit}"
    if frames_clear and seeds_clear:
        tail = f"a clear difference ({interval}; over seeds p = {stats['p_seeds']:.3f})"
    elif frames_clear:
        tail = (f"clear over these test frames ({interval}) but not over training seeds "
                f"(p = {stats['p_seeds']:.2f}): another seed could reverse it")
    else:
        tail = f"within noise ({interval})"
    return f"{better} is {abs(diff):.2f} {unit} more accurate than {worse}: {tail}."


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p values (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), np.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def critical_t(n_pairs: int) -> float:
    """t₀.₉₇₅ with n − 1 degrees of freedom: how many paired SEs a 5 % two-sided test needs."""
    from scipy import stats

    return float(stats.t.ppf(1 - ALPHA / 2, n_pairs - 1))


def verdict(diff: float, p: float | None, paper_diff: float | None = None, *,
            lower_is_better: bool = True) -> str:
    """Does an effect ``diff`` (better − worse variant) with paired-t-test p value ``p`` reproduce?

    The expected sign is ``paper_diff``'s when given (non-zero, finite), else negative for a metric
    where lower is better (an error in mm: an improvement lowers it) and positive otherwise.

    * ``"yes"``: the expected sign and p < ALPHA;
    * ``"same sign, within noise"``: the expected sign, p >= ALPHA;
    * ``"no: opposite sign, within noise"``: the other sign (or exactly 0), p >= ALPHA;
    * ``"no: reversed beyond noise"``: the other sign and p < ALPHA;
    * ``"one seed: cannot tell"``: ``p`` is None or NaN (fewer than two paired seeds).
    """
    if _missing(p):
        return ONE_SEED
    if paper_diff is not None and math.isfinite(paper_diff) and paper_diff != 0:
        expected = math.copysign(1.0, paper_diff)
    else:
        expected = -1.0 if lower_is_better else 1.0
    beyond = p < ALPHA
    if diff * expected > 0:
        return YES if beyond else SAME_SIGN
    return REVERSED if beyond else OPPOSITE_SIGN


def rule_sentence(effects: pd.DataFrame) -> str:
    """The verdict rule in one sentence, with this table's number of seeds and critical value."""
    n = int(effects["n_pairs"].max()) if len(effects) else 0
    if n < 2:
        return ("With one seed per variant there is no spread over seeds, so no effect can be tested "
                "(each verdict says so).")
    return (f"Each effect is the mean over {n} paired seeds of one variant's error minus the other's; it counts "
            f"as reproduced when it has the paper's sign and a two-sided paired t test rejects \"no effect\" at "
            f"{ALPHA:.0%} (p < {ALPHA}): with {n - 1} degrees of freedom that needs |diff| above "
            f"{critical_t(n):.2f} paired standard errors, and the 95 % interval is diff ± {critical_t(n):.2f} SE. "
            f"The column p_holm corrects the p values for testing the table's {len(effects)} effects together "
            "(Holm).")


def paired_effects(records: Sequence[dict], effects: Sequence[tuple[str, str, str]],
                   metric: str = DEFAULT_METRIC, paper: str | None = None, table: str | None = None,
                   labels: dict[str, str] | None = None, datasets: Sequence[str] = ("NYU", "ICVL"),
                   paper_metric: str = "mean_error", lower_is_better: bool = True) -> pd.DataFrame:
    """The paper's effects measured on our runs, one row per ``(name, better, worse)``, indexed by
    effect name.

    Columns: ``better``, ``worse`` (variants); ``per_seed`` (list of d_s = m(better, s) −
    m(worse, s) over ``seeds``, the seeds both variants have); ``diff`` = mean(d); ``se`` = the
    paired standard error std(d, ddof 1)/sqrt(n); ``ci_low``, ``ci_high`` (95 % t interval), ``t``,
    ``p`` (two-sided paired t test, :func:`t_test`) and ``p_holm`` (Holm over this table's
    effects); ``se_unpaired`` = sqrt(s_b²/n + s_w²/n) from the two variants' own std over the same
    seeds; ``n_pairs``; with ``paper``, ``table`` and ``labels`` (variant -> the paper's method
    name) the paper's difference per dataset as ``"paper NYU"`` ...; and ``verdict`` (:func:`verdict`
    of diff and p; its expected sign is the paper's when every paper difference given has the same
    sign, else ``lower_is_better``'s). With fewer than two pairs the SEs, p and interval are NaN
    ("one seed: cannot tell"); with none, diff is NaN too.
    """
    per_variant = _by_variant_seed(records, metric)
    with_paper = paper is not None and table is not None and labels is not None
    paper_values = (paper_numbers(paper, table, metric=paper_metric).set_index(["dataset", "method"])["value"]
                    if with_paper else None)
    rows = []
    for name, better, worse in effects:
        for variant in (better, worse):
            if variant not in per_variant:
                raise ValueError(f"effect {name!r}: no records of variant {variant!r}; "
                                 f"variants: {sorted(per_variant)}")
        a, b = per_variant[better], per_variant[worse]
        seeds = sorted(set(a) & set(b))
        va = np.array([a[s] for s in seeds], dtype=float)
        vb = np.array([b[s] for s in seeds], dtype=float)
        d = va - vb
        n = len(seeds)
        test = t_test(d)
        row = {"better": better, "worse": worse, "per_seed": d.tolist(), "seeds": seeds,
               "diff": test["diff"], "se": test["se"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
               "t": test["t"], "p": test["p"],
               "se_unpaired": (float(math.sqrt(va.var(ddof=1) / n + vb.var(ddof=1) / n)) if n > 1 else math.nan),
               "n_pairs": n}
        paper_diffs = []
        if with_paper:
            for dataset in datasets:
                pb = paper_values.get((dataset, labels.get(better)), np.nan)
                pw = paper_values.get((dataset, labels.get(worse)), np.nan)
                row[f"paper {dataset}"] = float(pb - pw)
                if math.isfinite(pb - pw) and pb != pw:
                    paper_diffs.append(pb - pw)
        signs = {math.copysign(1.0, p) for p in paper_diffs}
        expected = paper_diffs[0] if len(signs) == 1 else None
        row["verdict"] = verdict(row["diff"], row["p"], expected, lower_is_better=lower_is_better)
        rows.append(row)
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["p_holm"] = adjusted
    columns = ["better", "worse", "diff", "se", "ci_low", "ci_high", "t", "p", "p_holm", "se_unpaired",
               "n_pairs", "seeds", "per_seed"]
    if with_paper:
        columns += [f"paper {d}" for d in datasets]
    columns.append("verdict")
    return pd.DataFrame(rows, columns=columns,
                        index=pd.Index([name for name, _, _ in effects], name="effect"))


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n if n else 'none'} {singular if n == 1 else plural}"


def verdict_sentence(effects: pd.DataFrame, whose: str = "the paper's") -> str:
    """One plain sentence counting :func:`paired_effects`' verdicts, e.g. "Of the paper's 4
    improvements, 1 reproduces (p < 0.05), 2 point the same way within the noise and 1 does not
    reproduce." ("no: ..." verdicts count as not reproducing.) ``whose`` names the claims' owner where
    they are not the paper's numbers (e.g. "the design's" for an ablation of one's own)."""
    verdicts = list(effects["verdict"])
    total = len(verdicts)
    noun = "improvement" if total == 1 else "improvements"
    one_seed = verdicts.count(ONE_SEED)
    if total and one_seed == total:
        return (f"One seed per variant: the spread over seeds is unknown, so none of {whose} {total} "
                f"{noun} can be judged.")
    parts = [_count(verdicts.count(YES), "reproduces (p < 0.05)", "reproduce (p < 0.05)"),
             _count(verdicts.count(SAME_SIGN), "points the same way within the noise",
                    "point the same way within the noise"),
             _count(sum(v.startswith("no") for v in verdicts), "does not reproduce", "do not reproduce")]
    if one_seed:
        parts.append(_count(one_seed, "has one seed and cannot be judged", "have one seed and cannot be judged"))
    return f"Of {whose} {total} {noun}, {', '.join(parts[:-1])}{',' if len(parts) > 2 else ''} and {parts[-1]}."


# --- where the error comes from ----------------------------------------------------------------

def error_decomposition(predictions: dict, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Each variant's mean error split into its in-plane (x, y) part and its depth (|Δz|) part.

    ``predictions`` maps a variant to its runs' (pred, truth) pairs, (F, J, 3) camera mm each, one
    per seed (a chapter's ``grid.predictions`` regrouped, or a dict {(variant, seed): (pred, truth)},
    which is regrouped here). One row per variant (``labels`` renames and orders them), with the
    mean over seeds and the seed std (ddof 1) of: ``error_3d`` (the reported mean error),
    ``error_xy`` and ``error_z`` (mean over frames and joints of each component, mm), and ``n``."""
    from handlib.metrics import error_components, mean_error

    if predictions and all(isinstance(k, tuple) for k in predictions):
        grouped: dict = {}
        for (variant, _seed), pair in sorted(predictions.items(), key=lambda kv: str(kv[0])):
            grouped.setdefault(variant, []).append(pair)
        predictions = grouped
    order = list(labels) if labels else list(predictions)
    rows = []
    for variant in order:
        if variant not in predictions:
            raise ValueError(f"error_decomposition: no predictions of variant {variant!r}; have {sorted(predictions)}")
        per_seed = []
        for pred, truth in predictions[variant]:
            parts = error_components(pred, truth)
            per_seed.append([mean_error(parts[k]) for k in ("xyz", "xy", "z")])
        values = np.array(per_seed)
        row = {"variant": labels.get(variant, variant) if labels else variant}
        for i, name in enumerate(("error_3d", "error_xy", "error_z")):
            row[name] = float(values[:, i].mean())
            row[f"{name}_std"] = float(values[:, i].std(ddof=1)) if len(values) > 1 else math.nan
        row["n"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


# --- how far from converged ---------------------------------------------------------------------

def last_doubling(records: Sequence[dict], by: Sequence[str] = ("variant",)) -> pd.DataFrame:
    """What the last doubling of training samples still gained, from each run's learning curve.

    For every record: its validation error at the end (``samples`` seen) and at half as many samples
    (interpolated linearly in log samples between the curve's points); ``gain`` = error at half −
    error at the end (mm; positive = still improving). One row per ``by`` group: the mean of each
    over its runs, ``gain_std`` (ddof 1) and ``n``. A record without a learning curve is an error."""
    rows = []
    for record in records:
        curve = record.get("curve") or []
        if len(curve) < 2:
            raise ValueError(f"run {record.get('variant')} seed {record.get('seed')} has no learning curve "
                             "(records written before learning curves were recorded): retrain it")
        seen = np.array([point["samples_seen"] for point in curve], dtype=float)
        error = np.array([point["val"]["mean_error_mm"] for point in curve], dtype=float)
        end = seen[-1]
        at_half = float(np.interp(np.log(end / 2), np.log(seen), error))
        rows.append({**{key: record[key] for key in by}, "samples": int(end), "val_at_half": at_half,
                     "val_at_end": float(error[-1]), "gain": at_half - float(error[-1])})
    table = pd.DataFrame(rows)
    grouped = table.groupby(list(by), sort=False)
    out = grouped[["samples", "val_at_half", "val_at_end", "gain"]].mean()
    out["gain_std"] = grouped["gain"].std(ddof=1)
    out["n"] = grouped.size()
    out["samples"] = out["samples"].astype(int)
    return out


def budget_change(previous: Sequence[dict], current: Sequence[dict]) -> pd.DataFrame:
    """What a re-drawn budget bought, per variant: each budget's last doubling (:func:`last_doubling`:
    ``samples_before`` / ``gain_before``, ``samples_now`` / ``gain_now``), the mean test errors
    (``test_before``, ``test_now``) and the paired t test of now − before over the seeds both budgets
    trained (``diff``, ``se``, ``p``, ``n_pairs``). A variant missing from ``previous`` is an error."""
    before, now = last_doubling(previous), last_doubling(current)
    test_before = {(r["variant"], r["seed"]): r["test"]["mean_error_mm"] for r in previous}
    test_now = {(r["variant"], r["seed"]): r["test"]["mean_error_mm"] for r in current}
    rows = []
    for variant in now.index:
        if variant not in before.index:
            raise ValueError(f"variant {variant!r} has no run at the previous budget")
        seeds = sorted(s for v, s in test_now if v == variant and (v, s) in test_before)
        test = t_test([test_now[variant, s] - test_before[variant, s] for s in seeds])
        rows.append({"variant": variant, "samples_before": int(before.loc[variant, "samples"]),
                     "gain_before": before.loc[variant, "gain"], "samples_now": int(now.loc[variant, "samples"]),
                     "gain_now": now.loc[variant, "gain"],
                     "test_before": float(np.mean([test_before[variant, s] for s in seeds])),
                     "test_now": float(np.mean([test_now[variant, s] for s in seeds])),
                     "diff": test["diff"], "se": test["se"], "p": test["p"], "n_pairs": len(seeds)})
    return pd.DataFrame(rows).set_index("variant")


def step_profiles(profiles: Sequence[dict], trains: Sequence[dict] = (), labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per profiled training step (``bench train --profile-ops --json``): network, precision,
    optimiser, milliseconds per step and each group's share of it (%); with ``trains`` (``bench train
    --json`` results of the same networks and settings) also samples/s and the roofline fraction
    against the peak of that run's precision."""
    labels = labels or {}
    speed = {(t["variant"], t["precision"], t.get("fused_optimizer", False)): t for t in trains}
    rows = []
    for p in profiles:
        key = (p["variant"], p["precision"], p.get("fused_optimizer", False))
        row = {"network": labels.get(p["variant"], p["variant"]), "precision": p["precision"],
               "optimiser": "fused" if key[2] else "per-tensor", "ms / step": p["step_ms"]}
        row |= {f"{group} %": 100 * share for group, share in p["groups"].items()}
        if key in speed:
            row |= {"samples/s": speed[key]["samples_per_s"], "roofline fraction": speed[key]["roofline_fraction"],
                    "peak set by": speed[key]["peak_kernel"]}
        rows.append(row)
    return pd.DataFrame(rows).set_index(["network", "precision", "optimiser"])
