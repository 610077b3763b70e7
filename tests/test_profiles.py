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


def test_a_profile_file_from_before_serving_loads_and_serves_nothing(tmp_path):
    """The serve fields have defaults, so an older profile file (without them) still loads; like a file
    without ``speed_steps``, it plans no serve phase."""
    from harness import phases

    older = {k: v for k, v in profiles.get("smoke").to_json().items() if not k.startswith("serve_")}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(older))
    profile = profiles.get(str(path))
    assert profile.serve_seconds == 0 and "serve" not in phases.planned(profile)
    assert profile.serve_p99_bound_ms == 15.0 and profile.serve_min_queries == 100


def test_default_and_standard_serve_long_enough_for_a_valid_single_stream_p90():
    """LoadGen's minimums (``test_settings.h``): 10 s and 100 queries; early stopping's 64 queries follow."""
    from harness.scoring import loadgen_rules

    for name in ("default", "standard", "full"):
        profile = profiles.get(name)
        assert profile.serve_seconds >= loadgen_rules.MIN_DURATION_S
        assert profile.serve_min_queries >= loadgen_rules.MIN_QUERY_COUNT
    assert profiles.get("smoke").serve_seconds < loadgen_rules.MIN_DURATION_S, "smoke stays short: INVALID"


def test_zero_epochs_is_refused(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(profiles.get("smoke").to_json(), epochs=0)))
    with pytest.raises(ConfigError, match="epochs must be a whole number from 1 to 100000"):
        profiles.get(str(path))


def write_profile(tmp_path, **changes):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(profiles.get("smoke").to_json(), **changes)))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"name": "../../../../somewhere/else"}, "name '../../../../somewhere/else' is not a safe name"),
    ({"name": "<b>x</b>"}, "name '<b>x</b>' is not a safe name"),
    ({"name": "smoke\n"}, "is not a safe name"),
    ({"name": 7}, "name 7 is not a safe name"),
    ({"description": None}, "description must be a string"),
    ({"n_train": "60"}, "n_train must be a whole number of at least 1, or null"),
    ({"n_train": 60.0}, "n_train must be a whole number"),
    ({"n_val": -1}, "n_val must be a whole number of at least 0"),
    ({"n_test": 0}, "n_test must be a whole number of at least 1"),
    ({"batch_size": True}, "batch_size must be a whole number of at least 1, not True"),
    ({"predict_batch_size": 0}, "predict_batch_size must be a whole number"),
    ({"epochs": 10**9}, "epochs must be a whole number from 1 to 100000"),
    ({"learning_rate": 0}, "learning_rate must be a finite number above 0"),
    ({"learning_rate": "1e-3"}, "learning_rate must be a finite number above 0"),
    ({"job_timeout_s": 0}, "job_timeout_s must be a finite number of seconds above 0"),
    ({"job_timeout_s": -5}, "job_timeout_s must be a finite number of seconds above 0"),
    ({"job_timeout_s": 1e309}, "job_timeout_s must be a finite number"),
    ({"seed": "abc"}, "seed must be a whole number from 0 to"),
    ({"seed": -1}, "seed must be a whole number from 0 to"),
    ({"seed": 2**40}, "seed must be a whole number from 0 to"),
    ({"serve_seconds": -1}, "serve_seconds must be a number of seconds from 0 to 86400 (0: no serve phase)"),
    ({"serve_seconds": "10"}, "serve_seconds must be a number of seconds"),
    ({"serve_seconds": 1e9}, "serve_seconds must be a number of seconds from 0 to 86400"),
    ({"serve_sweep_seconds": 0}, "serve_sweep_seconds must be a number of seconds above 0"),
    ({"serve_min_queries": 0}, "serve_min_queries must be a whole number from 1 to 10000000"),
    ({"serve_min_queries": 99.5}, "serve_min_queries must be a whole number"),
    ({"serve_max_batch": 0}, "serve_max_batch must be a whole number from 1 to 1000000"),
    ({"serve_rate_trials": 0}, "serve_rate_trials must be a whole number from 1 to 100"),
    ({"serve_p99_bound_ms": 0}, "serve_p99_bound_ms must be a finite number of milliseconds above 0"),
    ({"serve_p99_bound_ms": float("nan")}, "serve_p99_bound_ms must be a finite number of milliseconds"),
])
def test_every_profile_field_is_checked_for_type_and_range_with_one_line_naming_it(tmp_path, changes, message):
    """Before this, these gave tracebacks, ran with nonsense or failed inside the job."""
    with pytest.raises(ConfigError) as err:
        profiles.get(str(write_profile(tmp_path, **changes)))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_shipped_profiles_pass_the_same_checks():
    assert all(profiles.field_problem(p) is None for p in profiles.PROFILES.values())

