"""Read and write the AWESOME label format: one frame per line, 3·J whitespace-separated numbers.

Lines are split on any whitespace (as AWESOME's ``compute_error.py`` does), so CRLF and trailing
spaces are harmless.
Bad files raise :class:`LabelFileError` naming the file, the 1-based line and the problem.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from handlib.dataset_registry import DATASETS
from handlib.fileio import atomic_write
from handlib.errors import LabelFileError


def expected_format(joints: int | None = None, frames: int | None = None, dataset: str | None = None) -> str:
    """One line saying what a valid file looks like, e.g. for NYU's test set: "expected one frame per
    line with 3*J whitespace-separated numbers (u v d per joint; NYU: 14 joints = 42 numbers, 8252 lines)"."""
    sizes = []
    if joints is not None:
        sizes.append(f"{joints} joints = {3 * joints} numbers")
    if frames is not None:
        sizes.append(f"{frames} lines")
    title = DATASETS[dataset].title if dataset in DATASETS else (dataset or "").upper()
    detail = f"{title}: " if dataset and sizes else ""
    detail += ", ".join(sizes)
    return ("expected one frame per line with 3*J whitespace-separated numbers (u v d per joint"
            + (f"; {detail}" if detail else "") + ")")


def read_label_file(path, joints: int | None = None, frames: int | None = None,
                    dataset: str | None = None) -> np.ndarray:
    """Read ``path`` -> (F, J, 3) float64 uvd (or xyz). ``joints``/``frames`` are checked when given;
    otherwise the joint count is inferred from the first line. A :class:`LabelFileError` says what is
    wrong (file, line, what was found) and, on a second line, :func:`expected_format` (``dataset``
    names the set in it)."""
    try:
        return _read_label_file(Path(path), joints, frames)
    except LabelFileError as err:
        raise LabelFileError(f"{err}\n  {expected_format(joints, frames, dataset)}") from None


def _read_label_file(path: Path, joints: int | None, frames: int | None) -> np.ndarray:
    if not path.is_file():
        raise LabelFileError(f"{path}: file not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise LabelFileError(f"{path}: not a text file (expected {3 * (joints or 1)} numbers per line)") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise LabelFileError(f"{path}: file is empty, expected one line of 3*J numbers per frame")
    counts = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    expected = 3 * joints if joints is not None else int(counts[0])
    if expected % 3 or expected == 0:
        raise LabelFileError(f"{path}, line 1: {counts[0]} values, expected a multiple of 3 (u v d per joint)")
    bad = np.flatnonzero(counts != expected)
    if bad.size:
        line = int(bad[0])
        raise LabelFileError(
            f"{path}, line {line + 1}: {counts[line]} values, expected {expected} "
            f"({expected // 3} joints x 3)")
    if frames is not None and len(lines) != frames:
        raise LabelFileError(f"{path}: {len(lines)} frames (lines), expected {frames}")
    tokens = " ".join(lines).split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        # Find the first offending token only on the error path.
        for i, token in enumerate(tokens):
            try:
                float(token)
            except ValueError:
                raise LabelFileError(
                    f"{path}, line {i // expected + 1}: non-numeric value {token!r}") from None
        raise
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise LabelFileError(f"{path}, line {i // expected + 1}: value {tokens[i]!r} is NaN or infinite")
    return values.reshape(len(lines), expected // 3, 3)


def write_label_file(path, labels, decimals: int = 4) -> None:
    """Write (F, J, 3) labels in the AWESOME format, atomically (temp file + rename)."""
    path = Path(path)
    flat = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    atomic_write(path, lambda f: np.savetxt(f, flat, fmt=f"%.{decimals}f"), fsync=False)
