"""Class folder names a user may give: kept as they are, or refused in one line when no one could tell them apart.

Real tiny image folders and archives (``tests.conftest``), decoded by the
workload's data module as the first job (and the harness, before any job) does.
Issue 30, break 6.
"""
from __future__ import annotations

import unicodedata

import pytest

from harness.workload import data
from harness.workload.errors import DataError
from tests.conftest import write_image_folder, write_tarball

LATEX = "$\\frac{a}{b}^{\\alpha}$"


@pytest.mark.parametrize("packed", [False, True])
def test_a_class_folder_named_with_backslashes_keeps_its_images(tmp_path, packed):
    """Before: `$\\frac{a}{b}^{\\alpha}$` vanished with its images, without a word (6 classes instead of 7)."""
    folder = write_image_folder(tmp_path / "images", classes=("cat", LATEX, "ship"))
    source = write_tarball(folder, tmp_path / "images.tar.gz") if packed else folder
    x, y, classes = data._decode("path", str(source))
    assert classes == sorted(["cat", LATEX, "ship"])
    assert len(x["train"]) == 3 * 12 and sorted(set(y["train"].tolist())) == [0, 1, 2]


def test_an_archive_made_on_windows_still_reads_backslashes_as_separators():
    assert data._split_member("cifar\\train\\cat\\0001.png") == ("train", "cat", "0001.png")
    assert data._split_member(f"cifar/train/{LATEX}/0001.png") == ("train", LATEX, "0001.png")


def test_class_names_equal_once_unicode_is_normalised_are_refused_in_one_line(tmp_path):
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    folder = write_image_folder(tmp_path / "images", classes=(composed, decomposed, "ship"))
    with pytest.raises(DataError) as err:
        data._decode("path", str(folder))
    assert str(err.value) == (f"data set {folder} has class folders {decomposed!r} and {composed!r}, which read the "
                              "same (equal once Unicode is normalised); merge or rename one of them")


def test_a_blank_class_name_is_refused_in_one_line(tmp_path):
    folder = write_image_folder(tmp_path / "images", classes=(" ", "cat"))
    with pytest.raises(DataError) as err:
        data._decode("path", str(folder))
    assert str(err.value) == (f"data set {folder} has a class folder named ' ', which is blank; rename it to say "
                              "what its images show")
