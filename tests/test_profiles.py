import pytest

from handlib import profiles


def test_every_profile_has_positive_sizes():
    for name in profiles.PROFILE_NAMES:
        p = profiles.get_profile(name)
        assert p.train_frames > 0 and p.epochs > 0 and p.batch_size > 0 and len(p.seeds) >= 1


def test_chapter_overrides_apply_to_that_chapter_only(monkeypatch):
    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES, "demo", {"smoke": {"epochs": 7, "knob": 3}})
    assert profiles.get_profile("smoke", "demo").epochs == 7
    assert profiles.get_profile("smoke", "demo").extra["knob"] == 3
    assert profiles.get_profile("smoke").epochs == profiles.PROFILES["smoke"].epochs


def test_unknown_profile_and_env_values_are_rejected(monkeypatch):
    with pytest.raises(ValueError, match="smoke, book, full"):
        profiles.get_profile("huge")
    monkeypatch.setenv("HANDLIB_PROFILE", "tiny")
    with pytest.raises(ValueError, match="HANDLIB_PROFILE"):
        profiles.default_profile()
    monkeypatch.setenv("HANDLIB_DATASET", "coco")
    with pytest.raises(ValueError, match="HANDLIB_DATASET"):
        profiles.default_dataset()


def test_a_variant_may_train_at_its_own_sizes(monkeypatch):
    from handlib import profiles
    from handlib.experiments import expected_hash

    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES, "staged", {
        "smoke": {"batch_size": 4, "recipe": {"lr": 0.01},
                  "variants": {"late": {"batch_size": 2, "epochs": 3}}}})
    early = profiles.get_profile("smoke", "staged", "early")
    late = profiles.get_profile("smoke", "staged", "late")
    assert (early.batch_size, early.epochs, late.batch_size, late.epochs) == (4, 1, 2, 3)
    assert "variants" not in early.extra and early.extra["recipe"] == {"lr": 0.01} == late.extra["recipe"]
    assert profiles.get_profile("smoke", "staged") == early
    # A variant's own settings enter only its configuration hash.
    before = expected_hash("cadstn", "baseline", "synthetic", "smoke")
    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES["cadstn"]["smoke"]["variants"], "temporal", {"batch_size": 1})
    assert expected_hash("cadstn", "baseline", "synthetic", "smoke") == before
