"""Loading data sets: image folders and archives, one shared decode, identical subsets."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import textwrap
import types

import numpy as np
import pytest

from harness.workload import data
from tests.conftest import CLASSES, REPO, write_image_folder

PROFILE = {"n_train": 18, "n_val": 6, "n_test": 9, "seed": 7}


def load(path, cache, messages=None):
    say = messages.append if messages is not None else None
    return data.load({"kind": "path", "path": str(path)}, "/unused", str(cache), say=say)


def test_an_image_folder_decodes_to_uint8_arrays_with_sorted_class_labels(image_folder, tmp_path):
    arrays = load(image_folder, tmp_path / "cache")
    assert arrays.classes == list(CLASSES)
    assert arrays.x["train"].shape == (36, 32, 32, 3) and arrays.x["train"].dtype == np.uint8
    assert arrays.x["test"].shape == (18, 32, 32, 3)
    assert np.bincount(arrays.y["train"]).tolist() == [12, 12, 12]


def test_a_tarball_gives_the_same_images_as_the_folder(image_folder, image_tarball, tmp_path):
    from_folder = load(image_folder, tmp_path / "cache")
    from_tar = load(image_tarball, tmp_path / "cache")
    assert from_folder.content_hash == from_tar.content_hash
    np.testing.assert_array_equal(from_folder.x["test"], from_tar.x["test"])


def test_an_archive_with_a_top_level_folder_is_understood(image_folder, tmp_path):
    target = tmp_path / "nested.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        archive.add(image_folder, arcname="cifar10")
    assert load(target, tmp_path / "cache").x["train"].shape[0] == 36


def test_the_second_load_reads_the_cache_without_decoding(image_tarball, tmp_path):
    first, second = [], []
    load(image_tarball, tmp_path / "cache", first)
    load(image_tarball, tmp_path / "cache", second)
    assert len(first) == 1 and "decoding" in first[0]
    assert second == []


def test_jobs_starting_together_decode_the_data_set_once(image_tarball, tmp_path):
    """Four real processes race for an empty cache; exactly one decodes."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from harness.workload import data
        data.load({{"kind": "path", "path": {str(image_tarball)!r}}}, "/unused", {str(tmp_path / 'cache')!r},
                  say=lambda m: print("DECODED"))
        print("LOADED")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(out.count("DECODED") for out in outputs) == 1
    assert sum(out.count("LOADED") for out in outputs) == 4
    leftovers = [p.name for p in (tmp_path / "cache" / "datasets").iterdir() if "partial" in p.name]
    assert leftovers == []


def test_subsets_are_stratified_disjoint_and_the_same_every_time(image_folder, tmp_path):
    arrays = load(image_folder, tmp_path / "cache")
    a = data.prepare(arrays, PROFILE)
    b = data.prepare(arrays, PROFILE)
    assert a.fingerprint == b.fingerprint
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a.indices[split], b.indices[split])
        np.testing.assert_array_equal(a.floats(split), b.floats(split))
    assert np.bincount(a.y["train"]).tolist() == [6, 6, 6]
    assert np.bincount(a.y["val"]).tolist() == [2, 2, 2]
    assert np.bincount(a.y["test"]).tolist() == [3, 3, 3]
    assert not set(a.indices["train"]) & set(a.indices["val"])
    floats = a.floats("train")
    assert floats.dtype == np.float32 and 0.0 <= floats.min() and floats.max() <= 1.0
    np.testing.assert_array_equal(a.floats("train", [2, 0])[0], floats[2])


def test_channels_first_gives_the_same_pixels_transposed(image_folder, tmp_path):
    arrays = load(image_folder, tmp_path / "cache")
    last, first = data.prepare(arrays, PROFILE), data.prepare(arrays, PROFILE, channels_first=True)
    assert first.input_shape() == (3, 32, 32) and last.input_shape() == (32, 32, 3)
    np.testing.assert_array_equal(first.floats("test"), last.floats("test").transpose(0, 3, 1, 2))


def test_a_different_seed_or_size_changes_the_fingerprint(image_folder, tmp_path):
    arrays = load(image_folder, tmp_path / "cache")
    base = data.prepare(arrays, PROFILE).fingerprint
    assert data.prepare(arrays, dict(PROFILE, seed=8)).fingerprint != base
    assert data.prepare(arrays, dict(PROFILE, n_test=6)).fingerprint != base


def test_all_images_is_asked_for_with_none(image_folder, tmp_path):
    arrays = load(image_folder, tmp_path / "cache")
    full = data.prepare(arrays, {"n_train": None, "n_val": 0, "n_test": None, "seed": 1})
    assert len(full.y["train"]) == 36 and len(full.y["val"]) == 0 and len(full.y["test"]) == 18


def test_a_data_set_smaller_than_the_profile_is_refused_not_shrunk(image_folder, tmp_path):
    arrays = load(image_folder, tmp_path / "cache")
    with pytest.raises(data.DataError, match="asks for 600 training and 200 validation images but the data "
                                             "set has 36 training images"):
        data.prepare(arrays, {"n_train": 600, "n_val": 200, "n_test": 5, "seed": 1})
    with pytest.raises(data.DataError, match="asks for 500 test images but the data set has 18"):
        data.prepare(arrays, {"n_train": 6, "n_val": 3, "n_test": 500, "seed": 1})


# -- bad data sets: one clear message each ------------------------------------------------
def test_a_missing_path_says_how_to_give_a_data_set(tmp_path):
    with pytest.raises(data.DataError, match="does not exist; pass --dataset"):
        load(tmp_path / "nowhere", tmp_path / "cache")


def test_an_empty_folder_says_which_layout_is_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"no images found under .*train/<class>/"):
        load(tmp_path / "empty", tmp_path / "cache")


def test_a_missing_test_split_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d", {"train": 2})
    with pytest.raises(data.DataError, match="test/<class>/; add a test split"):
        load(root, tmp_path / "cache")


def test_a_class_missing_from_one_split_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d", {"train": 2, "test": 1})
    for path in (root / "test" / "ship").iterdir():
        path.unlink()
    (root / "test" / "ship").rmdir()
    with pytest.raises(data.DataError, match=r"different classes \(ship appear in only one\)"):
        load(root, tmp_path / "cache")


def test_an_unreadable_image_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d", {"train": 2, "test": 1})
    (root / "train" / "cat" / "0000.png").write_bytes(b"not a png at all")
    with pytest.raises(data.DataError, match=r"cannot decode image .*0000.png"):
        load(root, tmp_path / "cache")


def test_an_image_of_the_wrong_size_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d", {"train": 2, "test": 1})
    write_image_folder(tmp_path / "small", {"train": 1}, size=16)
    (tmp_path / "small" / "train" / "dog" / "0000.png").replace(root / "train" / "dog" / "0001.png")
    with pytest.raises(data.DataError, match=r"0001.png .* is 16x16 but the data set's images are 32x32"):
        load(root, tmp_path / "cache")


def test_a_corrupt_archive_says_to_download_it_again(image_tarball, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(image_tarball.read_bytes()[:2000])
    with pytest.raises(data.DataError, match="corrupt|neither a folder nor a tar"):
        load(broken, tmp_path / "cache")


def test_a_cache_from_another_format_says_to_delete_it(image_tarball, tmp_path):
    arrays = load(image_tarball, tmp_path / "cache")
    meta = tmp_path / "cache" / "datasets" / arrays.key / "meta.json"
    meta.write_text(json.dumps(dict(json.loads(meta.read_text()), format=99)))
    with pytest.raises(data.DataError, match="delete that folder and run again"):
        load(image_tarball, tmp_path / "cache")


def test_an_offline_keras_download_points_to_the_offline_copy(monkeypatch, tmp_path):
    """Stands in for keras.datasets.cifar10 with one whose download fails, as offline."""
    def offline():
        raise OSError("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    fake = types.ModuleType("keras.datasets.cifar10")
    fake.load_data = offline
    monkeypatch.setitem(sys.modules, "keras", types.ModuleType("keras"))
    monkeypatch.setitem(sys.modules, "keras.datasets", types.ModuleType("keras.datasets"))
    monkeypatch.setitem(sys.modules, "keras.datasets.cifar10", fake)
    sys.modules["keras.datasets"].cifar10 = fake
    with pytest.raises(data.DataError, match="offline, pass --dataset with an image-folder copy"):
        data.load({"kind": "keras"}, "/unused", str(tmp_path / "cache"))


def test_keras_cifar10_arrays_are_cached_like_any_other(monkeypatch, tmp_path):
    """A stand-in for the download returns CIFAR-shaped arrays; they are cached and labelled."""
    rng = np.random.RandomState(0)
    x_train = rng.randint(0, 255, (20, 32, 32, 3)).astype(np.uint8)
    x_test = rng.randint(0, 255, (10, 32, 32, 3)).astype(np.uint8)
    y_train, y_test = np.arange(20).reshape(-1, 1) % 10, np.arange(10).reshape(-1, 1)
    fake = types.ModuleType("keras.datasets.cifar10")
    fake.load_data = lambda: ((x_train, y_train), (x_test, y_test))
    monkeypatch.setitem(sys.modules, "keras", types.ModuleType("keras"))
    monkeypatch.setitem(sys.modules, "keras.datasets", types.ModuleType("keras.datasets"))
    monkeypatch.setitem(sys.modules, "keras.datasets.cifar10", fake)
    sys.modules["keras.datasets"].cifar10 = fake
    arrays = data.load({"kind": "keras"}, "/unused", str(tmp_path / "cache"))
    assert arrays.key == "keras-cifar10" and arrays.classes[0] == "airplane"
    np.testing.assert_array_equal(arrays.y["train"], y_train.ravel())
    np.testing.assert_array_equal(arrays.x["test"], x_test)


def test_the_shipped_cifar10_archive_decodes_when_it_is_there(tmp_path):
    archive = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is not on this machine")
    key = data.source_key("path", str(archive))
    assert key.startswith("cifar10-jpeg-file-d34c68f61cca57aa")  # its sha256, as in the data set README
