"""Profiles: the three shipped ones, and custom ones from a JSON file."""
import json

import pytest

from harness import profiles
from harness.errors import ConfigError


def test_the_shipped_profiles_grow_from_smoke_to_the_seeds_full_setting():
    smoke, default, full = (profiles.get(n) for n in ("smoke", "default", "full"))
    assert smoke.n_train < default.n_train and full.n_train is None
    assert full.n_val == 0, "full is seed-faithful: it trains on everything"
    assert full.learning_rate == 1e-4, "the seed's RMSprop learning rate"
    assert all(p.batch_size == 32 for p in (smoke, default, full))


def test_a_json_file_defines_a_custom_profile(tmp_path):
    values = dict(profiles.get("smoke").to_json(), name="mine", epochs=7)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(values))
    assert profiles.get(str(path)).epochs == 7


@pytest.mark.parametrize("content, message", [
    ("{", "is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"name": "x"}', "is incomplete"),
    ('{"name": "x", "epoch": 3}', "unknown field(s) epoch"),
])
def test_a_bad_profile_file_says_which_fields_a_profile_needs(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="give every field of a profile") as err:
        profiles.get(str(path))
    assert message in str(err.value)


def test_zero_epochs_is_refused(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(profiles.get("smoke").to_json(), epochs=0)))
    with pytest.raises(ConfigError, match="epochs must be a whole number of at least 1"):
        profiles.get(str(path))
