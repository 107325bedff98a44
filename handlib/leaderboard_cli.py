"""``python -m handlib leaderboard``: the closing chapter's table from the committed bench records.

One row per model (:data:`handlib.one_bench.ENTRIES`) with its seed count, mean error ± std over seeds,
success-curve AUC over 0-80 mm, parameters and FLOPs per frame. Building the parser imports no torch.
"""
from __future__ import annotations

import json
import math

from handlib.dataset_registry import dataset_names
from handlib.profiles import BENCH_PROFILES

JSON_FIELDS = ("model", "variant", "seeds", "mean_error_mm", "std_mm", "auc", "params", "flops_per_frame")


def _run(args) -> int:
    from handlib.one_bench import leaderboard

    table = leaderboard(args.profile, args.dataset, results_dir=args.results_dir)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items() if k in JSON_FIELDS}
            for row in table.to_dict("records")]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"one bench, {args.profile} profile, trained and tested on {args.dataset} frames")
    print(f"{'model':<30} {'variant':<15} {'seeds':>5} {'error (mm)':>15} {'AUC':>6} {'params':>9} {'GFLOPs':>7}")
    for row in rows:
        error = "not trained" if row["mean_error_mm"] is None else (
            f"{row['mean_error_mm']:.2f}" + ("" if row["std_mm"] is None else f" ± {row['std_mm']:.2f}"))
        auc = "" if row["auc"] is None else f"{row['auc']:.3f}"
        print(f"{row['model']:<30} {row['variant']:<15} {row['seeds']:>5} {error:>15} {auc:>6} "
              f"{row['params'] / 1e6:>8.2f}M {row['flops_per_frame'] / 1e9:>7.3f}")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="the one-bench table of all five papers' models from the committed records",
        description="Every paper's full model and a direct-regression baseline, trained on the same frames at "
                    "the same budget (the closing chapter's bench): one row per model from the committed records.")
    parser.add_argument("--profile", default="book", choices=tuple(BENCH_PROFILES.values()),
                        help="the bench's size (default book: the committed records)")
    parser.add_argument("--dataset", default="synthetic", choices=dataset_names("synthetic"),
                        help="the rendered domain the models were trained and tested on (default synthetic)")
    parser.add_argument("--results-dir", default=None, help="folder of the records (default: the profile's)")
    parser.add_argument("--json", action="store_true",
                        help="print a list of rows with " + ", ".join(JSON_FIELDS))
    parser.set_defaults(func=_run)
