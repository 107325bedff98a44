"""Published test ground truth and predicted labels from ``xinghaochen/awesome-hand-pose-estimation``.

Files are fetched from the repository at one pinned commit (raw URLs, same repo-relative paths),
checked against :data:`handlib.data.checksums.SHA256` and cached in ``HANDLIB_PUBLISHED_DIR``
(default ``$XDG_CACHE_HOME/handlib/published/<commit>``, i.e. ``~/.cache/...``).
The files carry no licence of their own (the repository has no LICENSE file), so handlib never
ships them.
"""
from __future__ import annotations

import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handlib.data.checksums import SHA256
from handlib.dataset_registry import dataset_names, get_dataset
from handlib.fileio import sha256_file
from handlib.data.label_files import read_label_file
from handlib.errors import PublishedFileMissing

REPO = "xinghaochen/awesome-hand-pose-estimation"
COMMIT = "e297a6ea7fd557bd5701c97a3437c551c4b4fbce"
RAW_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/{{path}}"
ENV_VAR = "HANDLIB_PUBLISHED_DIR"

GROUND_TRUTH = {name: get_dataset(name).ground_truth for name in dataset_names("published")}
# Joints per frame in the evaluation files and test-set sizes, from the registry.
EVAL_JOINTS = {name: get_dataset(name).eval_joints for name in dataset_names("evaluable")}
TEST_FRAMES = {name: get_dataset(name).test_frames for name in dataset_names("evaluable")}
# NYU test: frames 0..2439 are subject A (the training subject), the rest subject B (the split
# CrossInfoNet's released network/NYU/test_nyu_cross.py reports).
NYU_SUBJECTS = {"A": slice(0, 2440), "B": slice(2440, 8252)}
# ICVL test: sequence A (test_seq_1, 702 frames) then sequence B (894).
ICVL_SEQUENCES = {"A": slice(0, 702), "B": slice(702, 1596)}


@dataclass(frozen=True)
class PublishedResult:
    """One method's released predictions on one dataset."""

    key: str          # short name used in handlib (and in CrossInfoNet Table 2 where it appears)
    dataset: str      # nyu | icvl
    method: str
    paper: str        # first author, venue
    year: int
    input: str        # "2D" (depth map) or "3D" (point cloud / voxels), as CrossInfoNet Table 2 groups them
    file: str         # path inside the AWESOME repository
    frames: int       # lines in the file (ICVL DeepPrior: sequence A only)


def _r(key, dataset, method, paper, year, input_, name, frames=None):
    folder = f"evaluation/results/{dataset}/"
    return PublishedResult(key, dataset, method, paper, year, input_, folder + name,
                           frames or TEST_FRAMES[dataset])


REGISTRY: tuple[PublishedResult, ...] = (
    # NYU
    _r("DeepPrior", "nyu", "DeepPrior", "Oberweger et al., CVWW", 2015, "2D", "CVWW15_NYU_Prior.txt"),
    _r("DeepPrior-Refinement", "nyu", "DeepPrior with refinement", "Oberweger et al., CVWW", 2015, "2D",
       "CVWW15_NYU_Prior-Refinement.txt"),
    _r("Feedback", "nyu", "Feedback loop", "Oberweger et al., ICCV", 2015, "2D", "ICCV15_NYU_Feedback.txt"),
    _r("DeepModel", "nyu", "DeepModel", "Zhou et al., IJCAI", 2016, "2D", "IJCAI16_NYU_DeepModel.txt"),
    _r("Lie-X", "nyu", "Lie-X", "Xu et al., IJCV", 2016, "2D", "IJCV16_NYU_LieX.txt"),
    _r("Guo-Basic", "nyu", "REN baseline", "Guo et al., ICIP", 2017, "2D", "ICIP17_NYU_Guo_Basic.txt"),
    _r("Ren-4x6x6", "nyu", "REN 4x6x6", "Guo et al., ICIP", 2017, "2D", "ICIP17_NYU_REN_4x6x6.txt"),
    _r("Ren-9x6x6", "nyu", "REN 9x6x6", "Wang et al., JVCI", 2018, "2D", "JVCI18_NYU_REN_9x6x6.txt"),
    _r("DeepPrior++", "nyu", "DeepPrior++", "Oberweger & Lepetit, ICCVW", 2017, "2D",
       "ICCVW17_NYU_DeepPrior++.txt"),
    _r("DeepPrior++FM", "nyu", "DeepPrior++ with feature mapping", "Rad et al., CVPR", 2018, "2D",
       "CVPR18_NYU_DeepPrior++_FM.txt"),
    _r("3DCNN", "nyu", "3D CNN", "Ge et al., CVPR", 2017, "3D", "CVPR17_NYU_3DCNN.txt"),
    _r("Pose-Ren", "nyu", "Pose-REN", "Chen et al., Neurocomputing", 2018, "2D", "NEUCOM18_NYU_Pose_REN.txt"),
    _r("DenseReg", "nyu", "Dense 3D regression", "Wan et al., CVPR", 2018, "2D", "CVPR18_NYU_denseReg.txt"),
    _r("V2V", "nyu", "V2V-PoseNet", "Moon et al., CVPR", 2018, "3D", "CVPR18_NYU_V2V_PoseNet.txt"),
    _r("HandPointNet", "nyu", "Hand PointNet", "Ge et al., CVPR", 2018, "3D", "CVPR18_NYU_HandPointNet.txt"),
    _r("Point-to-Point", "nyu", "Point-to-Point", "Ge et al., ECCV", 2018, "3D", "ECCV18_NYU_Point-to-Point.txt"),
    _r("SHPR-Net", "nyu", "SHPR-Net (frontal view)", "Chen et al., IEEE Access", 2018, "3D",
       "Access18_NYU_SHPR_Net_frontal.txt"),
    _r("SHPR-Net-three", "nyu", "SHPR-Net (three views)", "Chen et al., IEEE Access", 2018, "3D",
       "Access18_NYU_SHPR_Net_three.txt"),
    _r("CrossInfoNet", "nyu", "CrossInfoNet", "Du et al., CVPR", 2019, "2D", "CVPR19_NYU_CrossInfoNet.txt"),
    _r("MURAUER", "nyu", "MURAUER", "Poier et al., WACV", 2019, "2D", "WACV19_NYU_murauer_n72757_uvd.txt"),
    _r("WHSP-Net", "nyu", "WHSP-Net", "Sensors", 2019, "2D", "Sensors19_NYU_WHSP-Net.txt"),
    _r("Generalized-Feedback", "nyu", "Generalized feedback loop", "Oberweger et al., TPAMI", 2019, "2D",
       "TPAMI19_NYU_Generalized_Feedback.txt"),
    _r("SRNet", "nyu", "SRNet", "Ren et al., TMM", 2021, "2D", "TMM21_NYU_SRNet.txt"),
    _r("TriHorn-Net", "nyu", "TriHorn-Net", "Rezaei et al., arXiv", 2021, "2D", "ArXiv_NYU_TriHorn_Net.txt"),
    # ICVL
    _r("LRF", "icvl", "Latent regression forest", "Tang et al., CVPR", 2014, "2D", "CVPR14_LRF_Results.txt"),
    _r("DeepPrior", "icvl", "DeepPrior (sequence A only)", "Oberweger et al., CVWW", 2015, "2D",
       "CVWW15_ICVL_Prior.txt", frames=702),
    _r("DeepPrior-Refinement", "icvl", "DeepPrior with refinement (sequence A only)",
       "Oberweger et al., CVWW", 2015, "2D", "CVWW15_ICVL_Prior-Refinement.txt", frames=702),
    _r("DeepModel", "icvl", "DeepModel", "Zhou et al., IJCAI", 2016, "2D", "IJCAI16_ICVL_DeepModel.txt"),
    _r("Guo-Basic", "icvl", "REN baseline", "Guo et al., ICIP", 2017, "2D", "ICIP17_ICVL_Guo_Basic.txt"),
    _r("Ren-4x6x6", "icvl", "REN 4x6x6", "Guo et al., ICIP", 2017, "2D", "ICIP17_ICVL_REN_4x6x6.txt"),
    _r("Ren-9x6x6", "icvl", "REN 9x6x6", "Wang et al., JVCI", 2018, "2D", "JVCI18_ICVL_REN_9x6x6.txt"),
    _r("Pose-Ren", "icvl", "Pose-REN", "Chen et al., Neurocomputing", 2018, "2D", "NEUCOM18_ICVL_Pose_REN.txt"),
    _r("DenseReg", "icvl", "Dense 3D regression", "Wan et al., CVPR", 2018, "2D", "CVPR18_ICVL_denseReg.txt"),
    _r("V2V", "icvl", "V2V-PoseNet", "Moon et al., CVPR", 2018, "3D", "CVPR18_ICVL_V2V_PoseNet.txt"),
    _r("HandPointNet", "icvl", "Hand PointNet", "Ge et al., CVPR", 2018, "3D", "CVPR18_ICVL_HandPointNet.txt"),
    _r("Point-to-Point", "icvl", "Point-to-Point", "Ge et al., ECCV", 2018, "3D", "ECCV18_ICVL_Point-to-Point.txt"),
    _r("SHPR-Net", "icvl", "SHPR-Net", "Chen et al., IEEE Access", 2018, "3D", "Access18_ICVL_SHPR_Net.txt"),
    _r("CrossInfoNet", "icvl", "CrossInfoNet", "Du et al., CVPR", 2019, "2D", "CVPR19_ICVL_CrossInfoNet.txt"),
    _r("SRNet", "icvl", "SRNet", "Ren et al., TMM", 2021, "2D", "TMM21_ICVL_SRNet.txt"),
    _r("TriHorn-Net", "icvl", "TriHorn-Net", "Rezaei et al., arXiv", 2021, "2D", "ArXiv_ICVL_TriHorn_Net.txt"),
)


def cache_dir() -> Path:
    """Where published files live: ``HANDLIB_PUBLISHED_DIR`` or the user cache dir."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "handlib" / "published" / COMMIT


def methods(dataset: str | None = None) -> list[PublishedResult]:
    """Registry entries, optionally for one dataset."""
    return [r for r in REGISTRY if dataset is None or r.dataset == dataset]


def get_result(dataset: str, key: str) -> PublishedResult:
    for r in REGISTRY:
        if r.dataset == dataset and r.key == key:
            return r
    known = ", ".join(r.key for r in methods(dataset))
    raise KeyError(f"no published {dataset!r} result named {key!r}; known: {known}")


_verified: set[Path] = set()


def published_path(relpath: str, download: bool = False) -> Path:
    """Local path of a published file, checked against its SHA-256.

    With ``download=True`` a missing file is fetched (network); otherwise a missing file raises
    :class:`PublishedFileMissing` saying how to get it."""
    if relpath not in SHA256:
        raise KeyError(f"{relpath!r} is not in handlib's checksum list (handlib/data/checksums.py)")
    path = cache_dir() / relpath
    if not path.is_file():
        if not download:
            raise PublishedFileMissing(
                f"published file {relpath} is not in the cache {cache_dir()}. Get it with "
                f"`python -m handlib published fetch` (downloads from github.com/{REPO} at commit "
                f"{COMMIT[:7]}), or point {ENV_VAR} at a folder that holds it.")
        _download(relpath, path)
    if path not in _verified:
        digest = sha256_file(path)
        if digest != SHA256[relpath]:
            raise ValueError(f"{path}: SHA-256 {digest} does not match the expected {SHA256[relpath]}; "
                             "delete the file and fetch it again")
        _verified.add(path)
    return path


def _download(relpath: str, path: Path) -> None:
    """Fetch one file to a temp name, check its hash, then rename into place (atomic)."""
    url = RAW_URL.format(path=relpath)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            while block := response.read(1 << 20):
                f.write(block)
        digest = sha256_file(Path(tmp))
        if digest != SHA256[relpath]:
            raise ValueError(f"download of {url} has SHA-256 {digest}, expected {SHA256[relpath]}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def all_files(dataset: str | None = None) -> list[str]:
    """Repository-relative paths of the ground truth and every registered prediction file."""
    return [p for d, p in GROUND_TRUTH.items() if dataset in (None, d)] + [r.file for r in methods(dataset)]


def missing_files(dataset: str | None = None) -> list[str]:
    """The files of :func:`all_files` that are not in :func:`cache_dir` (no hashing, no network)."""
    return [p for p in all_files(dataset) if not (cache_dir() / p).is_file()]


HOW_TO_PROVIDE = (f"run `python -m handlib published fetch` once on a machine that reaches github.com "
                  f"(it downloads about 80 MB into the user cache), or point {ENV_VAR} at a folder that "
                  f"holds a copy (the repository's layout at commit {COMMIT[:7]})")


def fetch_all(dataset: str | None = None) -> list[Path]:
    """Download (or verify) the ground truth and every registered prediction file.

    Raises :class:`PublishedFileMissing` (saying what is missing and how to provide it) when a missing
    file cannot be downloaded."""
    import urllib.error

    from tqdm.auto import tqdm

    paths = all_files(dataset)
    # leave=False: a failed download's message is printed on its own line, not inside a dead bar.
    bar = tqdm(paths, desc="published files", disable=not missing_files(dataset), leave=False)
    try:
        with bar:
            return [published_path(p, download=True) for p in bar]
    except (urllib.error.URLError, OSError) as err:
        if isinstance(err, PublishedFileMissing):
            raise
        missing = missing_files(dataset)
        raise PublishedFileMissing(
            f"{len(missing)} of the {len(paths)} published files are not in {cache_dir()} and could not "
            f"be downloaded ({getattr(err, 'reason', err)}); {HOW_TO_PROVIDE}") from None


def load_ground_truth(dataset: str) -> np.ndarray:
    """(F, J, 3) uvd test ground truth of ``dataset`` (nyu or icvl)."""
    if dataset not in GROUND_TRUTH:
        raise PublishedFileMissing(
            f"no published {dataset!r} test ground truth in the checksum list; the MSRA files are over "
            f"4 MiB and not listed yet, so pass your own with --gt (AWESOME path "
            f"evaluation/groundtruth/msra/msra_test_groundtruth_label.txt)")
    return read_label_file(published_path(GROUND_TRUTH[dataset]), joints=EVAL_JOINTS[dataset],
                           frames=TEST_FRAMES[dataset])


def load_predictions(dataset: str, key: str) -> np.ndarray:
    """(F, J, 3) uvd predictions of a registered method."""
    r = get_result(dataset, key)
    return read_label_file(published_path(r.file), joints=EVAL_JOINTS[dataset], frames=r.frames)


def fetch_or_explain(dataset: str | None = None) -> str | None:
    """Make sure every published file is here (downloading what is missing); ``None`` when they all
    are, otherwise one paragraph saying what is missing and the two ways to provide it. A download that
    fails in any way (no network, a proxy's error page with the wrong checksum) counts as missing."""
    import http.client

    try:
        fetch_all(dataset)
    except PublishedFileMissing as err:
        return str(err)
    except (ValueError, http.client.HTTPException) as err:
        return f"the published files could not be fetched ({err}); {HOW_TO_PROVIDE}"
    return None


def explain_missing(dataset: str | None = None) -> str | None:
    """Like :func:`fetch_or_explain` but never downloads: for chapters that only *use* the files
    when they are already here."""
    missing = missing_files(dataset)
    if not missing:
        return None
    return (f"{len(missing)} of the {len(all_files(dataset))} published files are not in {cache_dir()}; "
            f"{HOW_TO_PROVIDE}")
