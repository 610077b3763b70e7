"""--backend accepts a name, a comma list or all; anything else is a clear error."""
import pytest

from harness.backends import BACKENDS, get, parse_backends
from harness.errors import ConfigError


def names(text):
    return [b.name for b in parse_backends(text)]


def test_all_means_every_backend_in_registry_order():
    assert names("all") == ["tensorflow", "jax", "torch", "theano", "cntk"]


def test_a_comma_list_keeps_registry_order_and_drops_duplicates():
    assert names("theano, tensorflow,theano") == ["tensorflow", "theano"]


def test_common_aliases_are_understood():
    assert names("tf,pytorch") == ["tensorflow", "torch"]


def test_an_unknown_backend_names_it_and_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        parse_backends("tensorflow,mxnet")
    assert str(err.value) == "unknown backend 'mxnet'; choose from tensorflow, jax, torch, theano, cntk, or all"


@pytest.mark.parametrize("text", ["", " , "])
def test_an_empty_list_is_an_error(text):
    with pytest.raises(ConfigError, match="--backend is empty"):
        parse_backends(text)


def test_all_cannot_be_mixed_with_names():
    with pytest.raises(ConfigError, match="cannot be combined"):
        parse_backends("all,jax")


def test_keras_lines_and_runtimes():
    assert {b.name for b in BACKENDS.values() if b.keras_line == "3"} == {"tensorflow", "jax", "torch"}
    assert get("cntk").runtime == "keras2-py36"
    assert get("theano").runtime == "keras2"
