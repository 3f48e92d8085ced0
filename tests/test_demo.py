"""Tests for the embedded demo dataset generator (specimen.data.demo)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from specimen.data.demo import make_demo

FORMAT_VARIANTS = ("cmyk", "greyscale", "rgba", "palette", "exif_rotated", "sixteen_bit")
DUPLICATE_KINDS = ("exact_duplicate", "cross_split_duplicate", "near_duplicate", "near_duplicate_leak")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_a")
    zip_path, truth_path = out / "data" / "demo.zip", out / "data" / "truth.json"
    truth = make_demo(zip_path, truth_path, seed=0)
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        blobs = {i.filename: zf.read(i) for i in infos}
    return {
        "zip": zip_path,
        "truth_path": truth_path,
        "truth": truth,
        "infos": infos,
        "blobs": blobs,
        "by_path": {f["path"]: f for f in truth["files"]},
    }


def _of_kind(demo, *kinds):
    return [f for f in demo["truth"]["files"] if f["kind"] in kinds]


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_output_is_byte_identical_across_runs(demo, tmp_path):
    zip_b, truth_b = tmp_path / "b.zip", tmp_path / "b.json"
    truth = make_demo(zip_b, truth_b, seed=0)
    assert zip_b.read_bytes() == demo["zip"].read_bytes()
    assert truth_b.read_bytes() == demo["truth_path"].read_bytes()
    assert truth == demo["truth"]
    # no temporary files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "b.zip"]


def test_truth_file_matches_return_value(demo):
    text = demo["truth_path"].read_text()
    assert text.endswith("\n")
    assert json.loads(text) == demo["truth"]
    assert text == json.dumps(demo["truth"], indent=2, sort_keys=True) + "\n"


def test_zip_entries_match_truth(demo):
    names = [i.filename for i in demo["infos"]]
    paths = [f["path"] for f in demo["truth"]["files"]]
    assert names == sorted(names)
    assert paths == sorted(paths)
    assert names == paths
    assert len(set(names)) == len(names)
    assert demo["truth"]["counts"]["files"] == len(names)
    for info in demo["infos"]:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_STORED
        assert "truth" not in info.filename.lower()
        split, label, _ = info.filename.split("/")
        assert split in ("train", "valid", "test")
        assert label in demo["truth"]["classes"]
    for f in demo["truth"]["files"]:
        split, label, _ = f["path"].split("/")
        assert (f["split"], f["label"]) == (split, label)


def test_counts_imbalance_and_splits(demo):
    truth = demo["truth"]
    kinds = Counter(f["kind"] for f in truth["files"])
    for kind, n in kinds.items():
        assert truth["counts"][kind] == n
    clean = _of_kind(demo, "clean")
    assert 1300 <= len(clean) <= 1700
    train_per_class = Counter(f["label"] for f in clean if f["split"] == "train")
    assert set(train_per_class) == set(truth["classes"])
    assert max(train_per_class.values()) / min(train_per_class.values()) >= 2
    present = {(f["split"], f["label"]) for f in clean}
    for label in truth["classes"]:
        for split in ("train", "valid", "test"):
            assert (split, label) in present
    for kind in (
        "corrupt",
        "non_image",
        "foreign",
        "blank",
        "noise",
        "mislabelled",
        *DUPLICATE_KINDS,
        *FORMAT_VARIANTS,
    ):
        assert kinds[kind] >= 1, kind


def test_mislabelled_digits_are_filed_under_another_digit(demo):
    """Each planted wrong label is a training image whose folder is not the digit it shows, and
    the zip holds nothing that gives it away (its name is like any other image's)."""
    wrong = _of_kind(demo, "mislabelled")
    assert len(wrong) == 16
    from sklearn.datasets import load_digits

    targets = load_digits().target
    for f in wrong:
        assert f["split"] == "train" and f["label"] != f["true_label"]
        assert f["true_label"] == str(targets[f["source_index"]])
        assert re.fullmatch(r"train/\d/img_\d{5}\.(jpg|png)", f["path"]), f["path"]
    names = [i.filename for i in demo["infos"]]
    assert not any("mislabel" in name or "truth" in name for name in names)


def test_source_digits_used_at_most_once(demo):
    originals = [
        f["source_index"] for f in demo["truth"]["files"] if "source_index" in f and f["kind"] not in DUPLICATE_KINDS
    ]
    assert len(originals) == len(set(originals))
    assert all(0 <= i < 1797 for i in originals)


def test_corrupt_entries_fail_to_decode(demo):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    corrupt = _of_kind(demo, "corrupt")
    assert len(corrupt) >= 5
    for f in corrupt:
        data = demo["blobs"][f["path"]]
        if not data:
            continue
        with pytest.raises((OSError, SyntaxError, ValueError)):  # what Pillow raises for a broken file
            _open(data)


def test_valid_images_decode_in_expected_modes(demo):
    expected_modes = {
        "cmyk": {"CMYK"},
        "palette": {"P"},
        "rgba": {"RGBA"},
        "sixteen_bit": {"I;16", "I"},
        "greyscale": {"L"},
    }
    for f in _of_kind(demo, "clean", *FORMAT_VARIANTS):
        img = _open(demo["blobs"][f["path"]])
        assert img.width >= 16 and img.height >= 16
        if f["kind"] in expected_modes:
            assert img.mode in expected_modes[f["kind"]], (f["path"], img.mode)


def test_exif_rotated_needs_transpose(demo):
    rotated = _of_kind(demo, "exif_rotated")
    assert rotated
    for f in rotated:
        raw = _open(demo["blobs"][f["path"]])
        upright = ImageOps.exif_transpose(raw)
        assert upright.size == (f["width"], f["height"])
        assert raw.size != upright.size
        assert raw.size == (f["height"], f["width"])


def _grey(data: bytes) -> Image.Image:
    return _open(data).convert("L")


def test_duplicates_relate_to_their_twins(demo):
    blobs, by_path = demo["blobs"], demo["by_path"]
    twins = [f["twin"] for f in _of_kind(demo, *DUPLICATE_KINDS)]
    assert len(twins) == len(set(twins))
    for f in _of_kind(demo, *DUPLICATE_KINDS):
        twin = by_path[f["twin"]]
        assert twin["kind"] == "clean" and twin["split"] == "train"
        assert twin["label"] == f["label"]
        if f["kind"] in ("exact_duplicate", "near_duplicate"):
            assert f["split"] == "train"
        else:
            assert f["split"] in ("valid", "test")
        copy, original = blobs[f["path"]], blobs[f["twin"]]
        if f["kind"] in ("exact_duplicate", "cross_split_duplicate"):
            assert copy == original
        else:
            assert copy != original
            a = _grey(original)
            b = _grey(copy).resize(a.size, Image.Resampling.BILINEAR)
            diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
            assert diff.mean() < 20, (f["path"], diff.mean())


def test_blank_noise_and_foreign_look_like_their_kind(demo):
    def std(f):
        rgb = np.asarray(_open(demo["blobs"][f["path"]]).convert("RGB"), dtype=np.float64)
        return float(rgb.std(axis=(0, 1)).max())  # spread within a channel

    assert all(std(f) < 3 for f in _of_kind(demo, "blank"))
    assert all(std(f) > 40 for f in _of_kind(demo, "noise"))
    assert all(std(f) > 15 for f in _of_kind(demo, "foreign"))
