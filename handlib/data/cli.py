"""CLI: ``python -m handlib evaluate`` and ``python -m handlib published {list,fetch}``.

Building the parser imports nothing heavy (``python -m handlib --help`` stays fast): numpy, torch and
the published registry are imported by the commands themselves.
"""
from __future__ import annotations

import json
from pathlib import Path

from handlib.dataset_registry import dataset_names
from handlib.errors import UsageError

EVAL_DATASETS = dataset_names("evaluable")
PUBLISHED_DATASETS = dataset_names("published")
PUBLISHED_REPO = "xinghaochen/awesome-hand-pose-estimation"   # = published.REPO (tests/test_cli_help.py)


def add_commands(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate", help="score a uvd prediction file (AWESOME protocol)",
        description="Mean 3D error, per-joint errors and max-frame success rates of a prediction file "
                    "(one frame per line, u v d per joint), as the AWESOME evaluation computes them.")
    ev.add_argument("dataset", choices=EVAL_DATASETS, help="which test set the file predicts")
    ev.add_argument("pred_file", help="prediction file, uvd, one line per test frame")
    ev.add_argument("--gt", help="ground-truth file (default: the published test ground truth)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.set_defaults(func=run_evaluate)

    pub = subparsers.add_parser("published", help="list or fetch the published predictions",
                                description=f"Published results from github.com/{PUBLISHED_REPO}.")
    pub_sub = pub.add_subparsers(dest="published_command", metavar="ACTION", required=True)
    ls = pub_sub.add_parser("list", help="print the registry")
    ls.add_argument("--dataset", choices=PUBLISHED_DATASETS)
    ls.set_defaults(func=run_list)
    fetch = pub_sub.add_parser("fetch", help="download and verify into the cache (network)")
    fetch.add_argument("--dataset", choices=PUBLISHED_DATASETS)
    fetch.set_defaults(func=run_fetch)


def run_evaluate(args) -> int:
    from handlib.data import published
    from handlib.data.label_files import LabelFileError, read_label_file
    from handlib.joints import get_convention
    from handlib.metrics import REPORT_THRESHOLDS_MM, evaluate_uvd

    joints = published.EVAL_JOINTS[args.dataset]
    # The user's own files first: a missing one is the problem, whatever the cache holds.
    for what, path in (("prediction file", args.pred_file), ("--gt", args.gt)):
        if path and not Path(path).is_file():
            raise UsageError(f"{path}: file not found (the {what}: a text file with one line per test frame, "
                             f"{joints} joints x u v d of {args.dataset})")
    try:
        if args.gt:
            gt = read_label_file(args.gt, joints=joints, dataset=args.dataset)
        else:
            gt = published.load_ground_truth(args.dataset)
        pred = read_label_file(args.pred_file, joints=joints, frames=len(gt), dataset=args.dataset)
    except (LabelFileError, published.PublishedFileMissing) as err:
        problem, newline, expected = str(err).partition("\n")
        if args.dataset == "icvl" and not args.gt and f"{published.ICVL_SEQUENCES['A'].stop} frames" in problem:
            problem += ("; 702 lines is ICVL test sequence A only: pass --gt with the first 702 lines of "
                        "the ground truth")
        raise UsageError(problem + newline + expected) from None
    result = evaluate_uvd(pred, gt, args.dataset)
    if args.json:
        print(json.dumps(result))
        return 0
    names = get_convention(args.dataset).joint_names
    print(f"{args.pred_file}: {result['frames']} frames, {result['joints']} joints ({args.dataset})")
    print(f"mean error: {result['mean_mm']:.2f} mm")
    print("per-joint error (mm):")
    for name, err in zip(names, result["per_joint_mm"]):
        print(f"  {name:<10} {err:7.2f}")
    print("max-frame success (fraction of frames whose worst joint is within the threshold):")
    for t in REPORT_THRESHOLDS_MM:
        print(f"  <= {t:2d} mm  {100 * result['success_max_frame'][str(t)]:6.2f} %")
    return 0


def run_list(args) -> int:
    from handlib.data import published

    for r in published.methods(args.dataset):
        print(f"{r.dataset:<5} {r.key:<22} {r.input}  {r.year}  {r.paper:<32} {r.file}")
    return 0


def run_fetch(args) -> int:
    from handlib.data import published

    paths = published.fetch_all(args.dataset)
    print(f"{len(paths)} files verified in {published.cache_dir()}")
    return 0
