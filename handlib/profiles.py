"""The run profiles: the one place that says how big each profile's runs are.

* ``smoke`` — seconds to a few minutes on a CPU; what the tests and nbval run.
* ``book``  — what the committed chapter outputs show; sized for a 2-core CPU.
* ``full``  — the papers' own budgets; meant for a GPU.

Every chapter reads its sizes through :func:`get_profile`, optionally with a chapter name whose
overrides (``CHAPTER_OVERRIDES``) replace the defaults for that chapter only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from handlib.dataset_registry import dataset_names

PROFILE_NAMES = ("smoke", "book", "full")
DATASET_NAMES = dataset_names()   # every dataset (handlib.dataset_registry)


@dataclass(frozen=True)
class Profile:
    name: str
    train_frames: int          # synthetic frames rendered for training (real data: cap, 0 = all)
    val_frames: int            # held-out frames used for model selection
    test_frames: int           # frames the tables are computed on
    epochs: int
    batch_size: int
    seeds: tuple[int, ...]     # one run per seed; tables report mean ± std over them
    image_size: int = 96
    extra: dict = field(default_factory=dict)  # chapter-specific knobs (see CHAPTER_OVERRIDES)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_frames=256, val_frames=64, test_frames=64, epochs=1,
                     batch_size=32, seeds=(0,)),
    "book": Profile("book", train_frames=20_000, val_frames=1_000, test_frames=2_000, epochs=10,
                    batch_size=64, seeds=(0, 1, 2)),
    "full": Profile("full", train_frames=200_000, val_frames=5_000, test_frames=10_000, epochs=110,
                    batch_size=128, seeds=(0, 1, 2)),
}

# Per-chapter overrides: {chapter: {profile: {field: value, "variants": {variant: {field: value}}}}}.
# Every chapter's sizes live here.
_SEG_VARIANTS = ("synthetic", "weak")                                 # neverova_seg's
_REG_VARIANTS = ("direct", "cascade", "per_joint_synthetic", "per_joint_weak")   # neverova_reg's (Table 4)

CHAPTER_OVERRIDES: dict[str, dict[str, dict]] = {
    # CrossInfoNet's book budget (re-drawn from the measured speeds; the chapter's learning curves show
    # where it stands): every run sees 38,400 freshly rendered frames once (1,200 steps of batch 32) —
    # fresh frames, because the same steps over a small set overfit it. A short budget's schedule is a
    # named setting: cosine decay from 2e-3 after a 5 % linear warm-up (the paper's Adam 1e-3 x 0.96 per
    # epoch assumes 110 epochs). bf16 autocast with the fused Adam: measured on this AMD EPYC (Zen 4, 2
    # cores; one run per core at one thread each; data/bench/crossinfonet-train/) Cross+HM trains at 36
    # samples/s and Base at 60 (fp32 with PyTorch's per-tensor Adam: 21 and 32), so the 12 runs take about
    # 1 h 35 min (the fp32 budget was 19,200 frames in 1 h 45 min; its records are in
    # data/results/crossinfonet-book-fp32-19200/). `output_init="target_stats"` starts the output
    # BatchNorms at the targets' mean / spread (see handlib.models.crossinfonet.OUTPUT_INITS). `full`
    # mirrors NYU's size (72,757 training / 8,252 test frames) and the paper's recipe and init.
    "crossinfonet": {
        # smoke: every cell runs, nothing is learnt (no checked cell depends on training): 8 steps of 8.
        "smoke": {"train_frames": 64, "val_frames": 32, "test_frames": 32, "batch_size": 8,
                  "output_init": "target_stats"},
        "book": {"train_frames": 38_400, "val_frames": 400, "test_frames": 2_000, "epochs": 1,
                 "batch_size": 32, "seeds": (0, 1, 2), "output_init": "target_stats",
                 "recipe": {"lr": 2e-3, "schedule": "cosine", "warmup_fraction": 0.05,
                            "precision": "bf16", "fused_optimizer": True}},
        "full": {"train_frames": 72_757, "val_frames": 5_000, "test_frames": 8_252, "epochs": 110,
                 "batch_size": 128, "seeds": (0, 1, 2), "output_init": "code"},
    },
    # CADSTN: every count is of 16-frame clips (the frame networks train on the clips' frames one at a
    # time, so all five networks are tested on the same frames), at the code's 128 x 128 crops. Each
    # stage's batch follows the code where the budget allows: 32 frames (code 128), 8 clips (temporal,
    # code 32), 4 clips (fusion, code 8). The book budget (from the learning curves and the measured
    # speeds, data/bench/cadstn-train/): every network one pass over 4,000 fresh clips (64,000 frames),
    # the fusion gate over 2,000 — twice the first budget, whose last doubling still gained up to 2.2 mm
    # — with a short-budget schedule as a named setting: a 5 % linear warm-up, then cosine decay from
    # each stage's peak rate (the code: lr x 0.1 every 20k of 100k iterations). bf16 autocast with the
    # fused Adam trains the convolutional networks 1.5-1.9x as fast as fp32 on this AMD EPYC (Zen 4);
    # the temporal network (an LSTM, slower in bf16 on this CPU) stays fp32 with the fused Adam. The
    # temporal network's peak is 1e-3 instead of the code's 1e-4: at 500 clips it reached 25.7 mm
    # against 27.1 mm (one seed; the code's rate assumes 100k iterations). The first budget's records
    # (2,000 clips, fp32): data/results/cadstn-book-fp32-2000/.
    "cadstn": {
        "smoke": {"train_frames": 4, "val_frames": 2, "test_frames": 2, "batch_size": 16, "image_size": 128,
                  "variants": {"temporal": {"batch_size": 2}, "cadstn": {"batch_size": 2}}},
        "book": {"train_frames": 4_000, "val_frames": 25, "test_frames": 125, "epochs": 1, "batch_size": 32,
                 "image_size": 128, "seeds": (0, 1, 2),
                 "recipe": {"schedule": "cosine", "warmup_fraction": 0.05, "precision": "bf16",
                            "fused_optimizer": True},
                 "variants": {"temporal": {"batch_size": 8,
                                           "recipe": {"schedule": "cosine", "warmup_fraction": 0.05, "lr": 1e-3,
                                                      "fused_optimizer": True}},
                              "cadstn": {"train_frames": 2_000, "batch_size": 4}}},
        # full: NYU's size (72,757 training frames = 4,548 clips; 8,252 test frames = 516 clips) and the code's
        # iterations (handlib.models.cadstn: FRAME_RECIPE, TEMPORAL_RECIPE, FUSION_RECIPE)
        "full": {"train_frames": 4_548, "val_frames": 100, "test_frames": 516, "epochs": 176, "batch_size": 128,
                 "image_size": 128, "seeds": (0, 1, 2),
                 "variants": {"temporal": {"epochs": 704, "batch_size": 32},
                              "cadstn": {"epochs": 106, "batch_size": 8}}},
    },
    # Liu et al.: the paper's network (128 x 128 input, 128 channels) trains at 1.2 frames/s on one core
    # (data/bench/liu-train/), so the book profile is a named smaller setting: 64 x 64 crops (32 x 32 heat
    # maps) and 32 channels, 71 frames/s; the chapter's learning curves show what it reaches. Every run
    # sees 32,000 fresh frames once (batch 32, the paper's) under the short-budget schedule the other
    # chapters use (5 % warm-up, cosine decay), with Adam 2e-3 instead of the paper's SGD 0.1: in 150-step
    # probes SGD left the heat maps at zero (mean-per-pixel loss) or diverged (Eq. 1's per-map sums),
    # where Adam learnt (the chapter's Deviations). `full` is the paper's recipe.
    "liu": {
        "smoke": {"train_frames": 64, "val_frames": 16, "test_frames": 16, "batch_size": 8, "image_size": 64,
                  "width": 16, "recipe": {"optimizer": "adam", "lr": 2e-3, "schedule": "cosine",
                                          "warmup_fraction": 0.05}},
        "book": {"train_frames": 32_000, "val_frames": 400, "test_frames": 2_000, "epochs": 1, "batch_size": 32,
                 "image_size": 64, "width": 32, "seeds": (0, 1, 2),
                 "recipe": {"optimizer": "adam", "lr": 2e-3, "schedule": "cosine", "warmup_fraction": 0.05}},
        "full": {"train_frames": 72_757, "val_frames": 5_000, "test_frames": 8_252, "epochs": 30, "batch_size": 32,
                 "image_size": 128, "width": 128, "seeds": (0, 1, 2)},
    },
    # Learnable joint groups: the depth adaptation's network (128 x 128, 256-channel hourglass, 32-channel
    # groups) is the `full` size; `book` is a named smaller setting (64 x 64 crops, 16 x 16 maps, 64 hourglass
    # channels, 32 group channels) as in the Liu et al. chapter: the full size trains G = 3 at 3.7 samples/s on
    # one thread of this AMD EPYC (Zen 4), too slow for a CPU budget. Book budget (data/bench/joint_groups-train/):
    # every run one pass over 16,000 fresh frames (500 steps of batch 32), bf16 autocast with the fused Adam
    # (1.48x fp32 with the per-tensor Adam for G = 3, two one-thread lanes), so the 21 runs (7 variants x 3 seeds) take about 24 min
    # of two lanes; the chapter's learning curves say what that budget leaves. `anneal_steps`: the
    # Gumbel-softmax temperature reaches its minimum after two thirds of each run's steps (smoke: 5 of 8).
    # Book and smoke use the short-budget schedule of the other chapters (5 % warm-up, cosine decay): the
    # full recipe's step decay (handlib.models.joint_groups.RECIPE) acts between epochs, and these runs are
    # one epoch.
    "joint_groups": {
        "smoke": {"train_frames": 64, "val_frames": 16, "test_frames": 16, "batch_size": 8, "image_size": 64,
                  "width": 16, "branch": 8, "anneal_steps": 5,
                  "recipe": {"schedule": "cosine", "warmup_fraction": 0.05}},
        "book": {"train_frames": 16_000, "val_frames": 400, "test_frames": 2_000, "epochs": 1, "batch_size": 32,
                 "image_size": 64, "width": 64, "branch": 32, "anneal_steps": 333, "seeds": (0, 1, 2),
                 "recipe": {"schedule": "cosine", "warmup_fraction": 0.05, "precision": "bf16",
                            "fused_optimizer": True}},
        "full": {"train_frames": 72_757, "val_frames": 5_000, "test_frames": 8_252, "epochs": 60, "batch_size": 32,
                 "image_size": 128, "width": 256, "branch": 32, "anneal_steps": 90_920, "seeds": (0, 1, 2)},
    },
    # Neverova et al. (issue 24): both networks read 48 x 48 crops (f_s segments them at 48, or at 24 in the
    # paper's fast setting `seg_size="fast"`; f_r area-resizes them to its 24 x 24 input). The book budget is
    # still to be chosen from the learning curves (README, "The book budget rule"); the sizes below are a
    # starting point of the same order as the other chapters'. `full`: the paper's sizes and schedules
    # (f_s: 170,974 renders, batch 1, 100 epochs, then 10 epochs of weak fine-tuning; f_r: NYU's 72,757
    # training frames, batch 64).
    "neverova": {
        # smoke: every cell runs in minutes on one thread, nothing is learnt: f_s in the fast 24-pixel setting;
        # f_r at Adam 1e-3 (the paper's 0.05 diverged at this size).
        "smoke": {"train_frames": 64, "val_frames": 16, "test_frames": 16, "batch_size": 8, "image_size": 48,
                  "seg_size": "fast", "dictionary_per_map": 16,
                  "variants": {v: {"recipe": {"lr": 1e-3}} for v in _REG_VARIANTS}},
        # book (from the measured speeds, data/bench/neverova-train/, and single-seed probes at 6,400 frames,
        # data/bench/neverova-probes/): every network one pass over 20,000 fresh frames at batch 32, f_s in
        # the paper's fast 24-pixel setting. A short budget's recipe is a named setting: the paper's SGD
        # (0.1, batch 1, 100 epochs) reached 53.8 % validation pixel accuracy where Adam 1e-3 reached 58.6 %
        # (SGD at 0.5: 47.7 %), so both f_s stages train with Adam 1e-3 (the weak stage at the rate the
        # first ends with, as the paper); f_r's Adam at the paper's 0.05 reached 45.2 mm where 1e-3 reached
        # 35.2 mm. f_s trains in bf16 (1.96x fp32 at 24 px), f_r in fp32 (bf16 only 1.09x); both with the
        # fused Adam (the per-joint f_r has 82 M parameters: 1.38x over the per-tensor loop). The
        # restoration's dictionary takes 16 patches per synthetic label map (320,000 patches; 64 per map
        # takes ~7 min per seed to index).
        "book": {"train_frames": 20_000, "val_frames": 400, "test_frames": 2_000, "epochs": 1, "batch_size": 32,
                 "image_size": 48, "seeds": (0, 1, 2), "seg_size": "fast", "dictionary_per_map": 16,
                 "variants": {**{v: {"recipe": {"optimizer": "adam", "lr": 1e-3, "schedule": "constant",
                                                "precision": "bf16", "fused_optimizer": True}}
                                 for v in _SEG_VARIANTS},
                              **{v: {"recipe": {"lr": 1e-3, "fused_optimizer": True}} for v in _REG_VARIANTS}}},
        "full": {"train_frames": 170_974, "val_frames": 5_000, "test_frames": 8_252, "epochs": 100, "batch_size": 1,
                 "image_size": 48, "seeds": (0, 1, 2),
                 "variants": {"weak": {"epochs": 10},
                              **{v: {"train_frames": 72_757, "epochs": 30, "batch_size": 64}
                                 for v in _REG_VARIANTS}}},
    },
}


# The closing chapter's bench: every paper's model at its own chapter's sizes (crop, width, batch, recipe),
# but all trained and tested on the same frames. `BENCH_PROFILES` maps each bench profile to the chapter
# profile it starts from; `BENCH_BUDGET` replaces that profile's counts. The counts are frames, drawn as
# rendered clips of `BENCH_CLIP_LENGTH` consecutive frames: the clip networks (CADSTN) read the clips,
# every other network the same clips' frames one by one, so every model is tested on the same frames with
# the same crop centres and cubes. Every network of a model's pipeline sees the same frames once.
BENCH_PROFILES = {"smoke-bench": "smoke", "book-bench": "book"}
BENCH_CLIP_LENGTH = 16
BENCH_BUDGET = {
    "smoke": {"train_frames": 64, "val_frames": 32, "test_frames": 32, "seeds": (0,)},
    # book: 500 clips (8,000 frames, 250 steps of batch 32) a network; the chapter states the budget in
    # lane-minutes and shows where every model's learning curve stands at it.
    "book": {"train_frames": 8_000, "val_frames": 400, "test_frames": 2_000, "seeds": (0, 1, 2)},
}
# Chapters whose profile counts clips of BENCH_CLIP_LENGTH frames, not frames (their networks read clips).
CLIP_COUNTED_CHAPTERS = ("cadstn",)
# Settings counted in training steps follow the bench's budget (the Gumbel-softmax temperature's anneal).
_STEP_SETTINGS = ("anneal_steps",)


def base_profile(name: str) -> str:
    """The chapter profile a profile starts from: itself, or a bench profile's base (``book-bench`` -> ``book``)."""
    return BENCH_PROFILES.get(name, name)


def check_choice(kind: str, value: str, valid) -> str:
    """Return ``value`` if valid, else raise ValueError listing the valid values."""
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid values: {', '.join(valid)}")
    return value


def get_profile(name: str, chapter: str | None = None, variant: str | None = None) -> Profile:
    """The profile ``name``, with ``chapter``'s overrides applied when it has any, and then those of
    ``variant`` (the chapter's ``"variants": {variant: {...}}`` entry: a stage of a multi-stage paper
    may train at another batch or length; the other variants' settings do not enter this profile)."""
    if name in BENCH_PROFILES:
        return _bench_profile(name, chapter, variant)
    check_choice("profile", name, PROFILE_NAMES + tuple(BENCH_PROFILES))
    profile = PROFILES[name]
    chapter_overrides = dict(CHAPTER_OVERRIDES.get(chapter or "", {}).get(name, {}))
    per_variant = chapter_overrides.pop("variants", {})
    overrides = {**chapter_overrides, **per_variant.get(variant, {})}
    known = {f for f in Profile.__dataclass_fields__ if f != "extra"}
    fields = {k: v for k, v in overrides.items() if k in known}
    extra = {**profile.extra, **{k: v for k, v in overrides.items() if k not in known}}
    return replace(profile, **fields, extra=extra)


def _bench_profile(name: str, chapter: str | None, variant: str | None) -> Profile:
    """A chapter's profile with the bench's counts (frames, read as clips of BENCH_CLIP_LENGTH): one pass."""
    base = get_profile(BENCH_PROFILES[name], chapter, variant)
    budget = BENCH_BUDGET[base.name]
    # The chapter's own counts are of clips where its networks read clips (CADSTN: clip_length set).
    per_count = BENCH_CLIP_LENGTH if chapter in CLIP_COUNTED_CHAPTERS else 1
    scale = budget["train_frames"] / (base.train_frames * per_count * base.epochs)
    extra = {**base.extra, "bench_clip_length": BENCH_CLIP_LENGTH}
    for key in _STEP_SETTINGS:
        if key in extra:
            extra[key] = max(1, round(extra[key] * scale))
    return replace(base, name=name, epochs=1, seeds=budget["seeds"], extra=extra,
                   **{k: budget[k] // per_count for k in ("train_frames", "val_frames", "test_frames")})


def default_profile() -> str:
    """``HANDLIB_PROFILE`` (what nbval sets to ``smoke``), else ``book``."""
    return check_choice("profile (HANDLIB_PROFILE)", os.environ.get("HANDLIB_PROFILE", "book"),
                        PROFILE_NAMES)


def default_dataset() -> str:
    """``HANDLIB_DATASET``, else ``synthetic``."""
    return check_choice("dataset (HANDLIB_DATASET)", os.environ.get("HANDLIB_DATASET", "synthetic"),
                        DATASET_NAMES)
