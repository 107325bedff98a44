"""Numbers the seed papers print for published methods, mapped to the released prediction files.

Each row: (paper, table, dataset, name as printed, printed mean error in mm, registry key or None,
note). Values are transcribed as printed (the project's ``paper_tables.csv``); the evaluation
chapter recomputes every mapped row from the released file and prints the two side by side.
"""
from __future__ import annotations

from typing import NamedTuple


class PrintedRow(NamedTuple):
    paper: str
    table: str
    dataset: str       # nyu | icvl | msra
    name: str          # method name as printed
    value_mm: float
    key: str | None    # handlib.data.published registry key, None when no file is released
    note: str = ""
    intrinsics: str = "evaluation"   # camera that reproduces the print: AWESOME's or the training one


_TRAIN_ICVL = "reproduced with the training intrinsics (fx = fy = 241.42), not AWESOME's"


_MSRA_MISPRINT = "printed in the MSRA column; it is the NYU value (matches the NYU file)"

PRINTED: tuple[PrintedRow, ...] = (
    # CrossInfoNet (Du et al., CVPR 2019), Table 2.
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "Feedback", 15.97, "Feedback", _MSRA_MISPRINT),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "Lie-X", 14.51, "Lie-X", _MSRA_MISPRINT),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "LRF", 12.58, "LRF"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "DeepModel", 11.56, "DeepModel"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "DeepModel", 17.04, "DeepModel"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "DeepPrior", 10.4, "DeepPrior", "sequence A only (702 frames)"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "DeepPrior", 19.73, "DeepPrior-Refinement",
               "matches the refinement file, not plain DeepPrior"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "Ren-4x6x6", 7.63, "Ren-4x6x6"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "Ren-4x6x6", 13.39, "Ren-4x6x6"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "Ren-9x6x6", 7.31, "Ren-9x6x6"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "Ren-9x6x6", 12.69, "Ren-9x6x6"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "DeepPrior++", 8.1, None, "no ICVL file released"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "DeepPrior++", 12.24, "DeepPrior++"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "Pose-Ren", 6.79, "Pose-Ren"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "Pose-Ren", 11.81, "Pose-Ren"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "DenseReg", 7.3, "DenseReg",
               "self-reported paper value (one decimal)"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "DenseReg", 10.2, "DenseReg"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "CrossInfoNet (Ours)", 6.73, "CrossInfoNet"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "CrossInfoNet (Ours)", 10.08, "CrossInfoNet"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "3DCNN", 14.1, "3DCNN"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "SHPR-Net", 7.22, "SHPR-Net"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "SHPR-Net", 10.78, "SHPR-Net", "frontal-view file"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "HandPointNet", 6.94, "HandPointNet",
               "self-reported paper value"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "HandPointNet", 10.54, "HandPointNet"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "Point-to-Point", 6.3, "Point-to-Point"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "Point-to-Point", 9.1, "Point-to-Point",
               "self-reported paper value"),
    PrintedRow("CrossInfoNet", "Table 2", "icvl", "V2V", 6.28, "V2V"),
    PrintedRow("CrossInfoNet", "Table 2", "nyu", "V2V", 8.42, "V2V"),
    # Liu et al. (spatial-aware 2D), Table 1.
    PrintedRow("Liu", "Table 1", "icvl", "DeepModel", 11.547, "DeepModel", _TRAIN_ICVL, "training"),
    PrintedRow("Liu", "Table 1", "icvl", "Ren-4x6x6", 7.618, "Ren-4x6x6", _TRAIN_ICVL, "training"),
    PrintedRow("Liu", "Table 1", "icvl", "Ren-9x6x6", 7.296, "Ren-9x6x6", _TRAIN_ICVL, "training"),
    PrintedRow("Liu", "Table 1", "icvl", "Pose-REN", 6.783, "Pose-Ren", _TRAIN_ICVL, "training"),
    PrintedRow("Liu", "Table 1", "icvl", "DenseReg", 7.232, "DenseReg", _TRAIN_ICVL, "training"),
    PrintedRow("Liu", "Table 1", "icvl", "V2V-PoseNet", 6.276, "V2V", _TRAIN_ICVL, "training"),
    PrintedRow("Liu", "Table 1", "nyu", "DeepPrior", 20.750, "DeepPrior", "plain DeepPrior file"),
    PrintedRow("Liu", "Table 1", "nyu", "Feedback", 15.973, "Feedback"),
    PrintedRow("Liu", "Table 1", "nyu", "DeepModel", 17.036, "DeepModel"),
    PrintedRow("Liu", "Table 1", "nyu", "REN-4x6x6", 13.393, "Ren-4x6x6"),
    PrintedRow("Liu", "Table 1", "nyu", "REN-9x6x6", 12.694, "Ren-9x6x6"),
    PrintedRow("Liu", "Table 1", "nyu", "DeepPrior++", 12.238, "DeepPrior++"),
    PrintedRow("Liu", "Table 1", "nyu", "Pose-REN", 11.811, "Pose-Ren"),
    PrintedRow("Liu", "Table 1", "nyu", "DenseReg", 10.214, "DenseReg"),
    PrintedRow("Liu", "Table 1", "nyu", "V2V-PoseNet", 8.419, "V2V"),
    # CADSTN (Tables II and III).
    PrintedRow("CADSTN", "Table II", "nyu", "DeepPrior", 19.73, "DeepPrior-Refinement",
               "matches the refinement file"),
    PrintedRow("CADSTN", "Table II", "nyu", "Feedback", 15.97, "Feedback"),
    PrintedRow("CADSTN", "Table II", "nyu", "DeepModel", 16.90, "DeepModel", "self-reported paper value"),
    PrintedRow("CADSTN", "Table II", "nyu", "Lie-X", 14.51, "Lie-X"),
    PrintedRow("CADSTN", "Table III", "icvl", "LRF", 12.56, "LRF", _TRAIN_ICVL, "training"),
    PrintedRow("CADSTN", "Table III", "icvl", "DeepPrior", 9.42, "DeepPrior-Refinement",
               "refinement file, sequence A only; " + _TRAIN_ICVL, "training"),
    PrintedRow("CADSTN", "Table III", "icvl", "DeepModel", 11.55, "DeepModel", _TRAIN_ICVL, "training"),
    # Neverova et al., Table 4, 3D column (one decimal).
    PrintedRow("Neverova", "Table 4", "nyu", "Oberweger et al. (DeepPrior)", 19.8, "DeepPrior-Refinement",
               "self-reported paper value (refinement file)"),
    PrintedRow("Neverova", "Table 4", "nyu", "Oberweger et al. (Feedback)", 16.0, "Feedback"),
    PrintedRow("Neverova", "Table 4", "nyu", "Xu et al. (Lie-X)", 14.5, "Lie-X"),
    PrintedRow("Neverova", "Table 4", "nyu", "Zhou et al. (DeepModel)", 16.9, "DeepModel",
               "self-reported paper value"),
    PrintedRow("Neverova", "Table 4", "nyu", "Guo et al. (REN)", 13.4, "Ren-4x6x6"),
    PrintedRow("Neverova", "Table 4", "nyu", "Oberweger et al. (DeepPrior++)", 12.3, "DeepPrior++",
               "self-reported paper value"),
)


def rows(paper: str | None = None, dataset: str | None = None) -> list[PrintedRow]:
    return [r for r in PRINTED if paper in (None, r.paper) and dataset in (None, r.dataset)]
