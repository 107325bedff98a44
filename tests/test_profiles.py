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
