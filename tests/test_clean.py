"""clean on real processed images: every reason, every output, each outlier method's rule."""

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from specimen import SpecimenError
from specimen.clean.clean import clean
from specimen.clean.duplicates import DUPLICATE_REASONS
from specimen.clean.embed import embed
from specimen.clean.neighbours import nearest
from specimen.clean.outliers import outlier_scores, outliers
from specimen.data.extract import extract
from specimen.data.ingest import ingest
from specimen.data.preprocess import preprocess

from .conftest import set_dotted
from .test_figures import png_title
from .test_stages import raw_from_folder, save

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def clean_params(**changes):
    """params.yaml's clean section with dotted changes, e.g. {"outliers.method": "lof"}."""
    return set_dotted(json.loads(json.dumps(PARAMS["clean"])), changes)


def page(rng, size=(40, 48), ink=(40, 40, 50), paper=None) -> np.ndarray:
    """An off-white page with two letters written at random places: one of many distinct images."""
    h, w = size
    paper = paper if paper is not None else 205 + rng.uniform(-4, 4, 3)
    img = np.clip(np.broadcast_to(paper, (h, w, 3)) + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
    for _ in range(2):
        letter = "ABCDEFGHKMNPRSTUVWXYZ"[int(rng.integers(0, 21))]
        x, y = int(rng.integers(0, max(1, w - 22))), int(rng.integers(18, max(19, h - 2)))
        cv2.putText(img, letter, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, tuple(int(c) for c in ink), 2)
    return img


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """A two-class dataset with one of each fault, preprocessed and embedded (histogram)."""
    tmp = tmp_path_factory.mktemp("dirty")
    rng = np.random.default_rng(1)
    root = tmp / "dataset"
    images = {}
    for split, n in (("train", 30), ("valid", 8), ("test", 8)):
        for label, ink in (("pen", (40, 40, 50)), ("pencil", (72, 72, 82))):
            for i in range(n):
                images[f"{split}/{label}/{label}_{i:02d}.png"] = page(rng, ink=ink)
    images["train/pen/pen_00_copy.png"] = images["train/pen/pen_00.png"]  # duplicate
    images["test/pen/pen_01_again.png"] = images["train/pen/pen_01.png"]  # leak
    images["valid/pencil/pencil_02_bright.png"] = np.clip(
        images["train/pencil/pencil_02.png"].astype(int) + 8, 0, 255
    ).astype(np.uint8)  # near leak
    small = cv2.resize(images["train/pen/pen_03.png"], (36, 30), interpolation=cv2.INTER_AREA)  # 75 %
    images["train/pen/pen_03_small.png"] = small  # near duplicate
    images["train/pencil/blank.png"] = np.full((40, 40, 3), (180, 60, 60), np.uint8)  # low information
    images["train/pen/noise.png"] = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # outlier
    images["valid/pen/night.png"] = (page(rng) * 0.25).astype(np.uint8)  # dark
    images["train/pencil/strip.png"] = cv2.resize(page(rng, ink=(72, 72, 82)), (144, 40))  # odd aspect ratio
    images["test/pencil/blank.png"] = np.full((40, 40, 3), (60, 60, 180), np.uint8)  # unusable in any split
    for name, img in images.items():
        save(root / name, Image.fromarray(img))
    extract(raw_from_folder(tmp, root), tmp / "extracted", 100)
    ingest(tmp / "extracted", tmp / "interim", {"train": 0.6, "valid": 0.2, "test": 0.2}, seed=0)
    preprocess(
        tmp / "interim/manifest.csv",
        tmp / "extracted",
        tmp / "processed",
        {"size": [32, 32], "resize": "pad", "color": "rgb"},
        64,
    )
    embed(tmp / "processed", tmp / "features/histogram.npz", "histogram")
    return tmp, len(images)


def run_clean(dirty, out, **changes):
    tmp, _ = dirty
    summary = clean(tmp / "processed", tmp / "features/histogram.npz", out, clean_params(**changes), seed=0)
    removed = pd.read_csv(out / "removed.csv", keep_default_na=False).set_index("id")
    return summary, removed


def test_every_fault_is_removed_with_its_reason_and_twin(dirty, tmp_path):
    summary, removed = run_clean(dirty, tmp_path / "clean")
    expect = {
        "train/pen/pen_00_copy.png": ("duplicate", "train/pen/pen_00.png"),
        "test/pen/pen_01_again.png": ("leak", "train/pen/pen_01.png"),
        "valid/pencil/pencil_02_bright.png": ("near_leak", "train/pencil/pencil_02.png"),
        "train/pen/pen_03_small.png": ("near_duplicate", "train/pen/pen_03.png"),
        "train/pencil/blank.png": ("low_information", ""),
        "test/pencil/blank.png": ("low_information", ""),  # unusable: removed from test too
    }
    for image_id, (reason, twin) in expect.items():
        assert (removed.loc[image_id, "reason"], removed.loc[image_id, "twin"]) == (reason, twin), image_id
    # with colour histograms an outlier is flagged, not removed (outliers.action auto): nothing else goes
    assert sorted(removed.index) == sorted(expect)
    assert removed.loc["train/pen/pen_03_small.png", "detail"].startswith("phash")
    kept = pd.read_csv(tmp_path / "clean/index.csv", keep_default_na=False).set_index("id")
    assert kept["flags"]["train/pen/noise.png"] == "outlier"
    assert kept["flags"]["valid/pen/night.png"] == "dark;outlier"
    assert summary["outliers"] == {"action": "flag", "holdout": "flag"}


def test_valid_and_test_only_lose_copies_and_unusable_images(dirty, tmp_path):
    """Outliers removed in train (as with a learnt embedding) are flagged in valid and test, and so are
    removable quality hits; holdout: same acts there as in train."""
    changes = {"outliers.action": "remove", "quality.dark.action": "remove"}
    summary, removed = run_clean(dirty, tmp_path / "a", **changes)
    kept = pd.read_csv(tmp_path / "a/index.csv", keep_default_na=False).set_index("id")
    assert removed.loc["train/pen/noise.png", "reason"] == "outlier"
    assert "valid/pen/night.png" not in removed.index and kept["flags"]["valid/pen/night.png"] == "dark;outlier"
    holdout = removed[removed.split != "train"]
    assert set(holdout.reason) == {"leak", "near_leak", "low_information"}, holdout
    summary, removed = run_clean(dirty, tmp_path / "b", holdout="same", **changes)
    assert removed.loc["valid/pen/night.png", "reason"] == "dark"
    summary, removed = run_clean(dirty, tmp_path / "c", unusable=[], holdout="flag")
    assert "test/pencil/blank.png" not in removed.index  # no longer unusable: flagged there
    assert removed.loc["train/pencil/blank.png", "reason"] == "low_information"


def test_every_image_is_accounted_for_in_the_outputs(dirty, tmp_path):
    out = tmp_path / "clean"
    summary, removed = run_clean(dirty, out)
    tmp, n_images = dirty
    kept = pd.read_csv(out / "index.csv", keep_default_na=False)
    scores = pd.read_csv(out / "scores.csv")  # empty cells (a score not computed) as NaN
    assert len(kept) + len(removed) == n_images == summary["images"] == len(scores)
    assert set(kept.id).isdisjoint(removed.index)
    assert summary["removed_by_reason"] == removed.reason.value_counts().to_dict()
    assert sum(c["after"] for c in summary["per_class"].values()) == len(kept) == summary["kept"]
    assert summary["per_split"]["test"]["removed"] == {"leak": 1, "low_information": 1}
    assert summary["per_split"]["valid"]["removed"] == {"near_leak": 1}
    # flags: named in scores.csv (and index.csv for kept images), counted in the summary
    assert scores.set_index("id")["flags"]["valid/pen/night.png"] == "dark;outlier"
    # the strip: 144 x 40 among pages of one size, so odd in shape and in size (cleanvision's IQR of sqrt(area))
    assert scores.set_index("id")["flags"]["train/pencil/strip.png"] == "odd_aspect_ratio;odd_size"
    assert set(kept["flags"]) <= {"", "outlier", "dark;outlier", "odd_aspect_ratio;odd_size"}
    assert summary["flagged_by_kind"] == {"dark": 1, "odd_aspect_ratio": 1, "odd_size": 1, "outlier": 2}
    # a score for every image, removed or not
    others = kept[kept.id != "train/pen/noise.png"]
    assert scores.set_index("id").loc["train/pen/noise.png", "outlier_score"] > others.outlier_score.max()
    assert scores[["dark_score", "low_information_score", "phash"]].notna().all().all()
    assert scores.set_index("id").reason["train/pen/pen_00_copy.png"] == "duplicate"
    # pictures for people: one gallery per reason, and the class counts
    assert sorted(p.stem for p in (out / "gallery").iterdir()) == sorted(summary["removed_by_reason"])
    for reason, rows in removed.groupby("reason"):
        shown = gallery_entries(out / f"gallery/{reason}.png", tmp / "processed")
        rows = rows.reset_index().sort_values(["score", "id"], ascending=[False, True])  # highest score first
        assert [image_id for image_id, _ in shown] == rows.id.tolist()
        assert [twin for _, twin in shown] == (rows.twin.tolist() if reason in DUPLICATE_REASONS else [""] * len(rows))
    assert png_title(out / "class_counts.png") == " | ".join(
        f"{split}: {c['before']} -> {c['after']} images" for split, c in summary["per_split"].items()
    )


def gallery_entries(png, processed) -> list[tuple[str, str]]:
    """(id, twin) per image a gallery lists, each checked to be drawn in it, a copy's twin to its right."""

    with Image.open(png) as im:
        sheet, listed = np.asarray(im.convert("RGB")), im.text["Description"].split("\n")
    index = pd.read_csv(processed / "index.csv").set_index("id")
    entries = [(line.split(" beside ") + [""])[:2] for line in listed]

    def drawn_at(image_id):  # where the image appears, enlarged whole-factor as the sheet draws it
        row = index.loc[image_id]
        img = np.load(processed / "shards" / row.shard, mmap_mode="r")[int(row.offset)]
        scale = max(1, 144 // max(img.shape[:2]))
        tile = np.repeat(np.repeat(np.repeat(img, 3 // img.shape[2], axis=2), scale, 0), scale, 1)
        found = cv2.matchTemplate(sheet, np.ascontiguousarray(tile), cv2.TM_SQDIFF)  # float32, through a DFT
        return {(int(y), int(x)) for y, x in zip(*np.nonzero(found <= tile.size))}  # at most 1 squared per value

    for image_id, twin in entries:
        at = drawn_at(image_id)
        assert at, f"{image_id} is listed in {png.name} but not drawn"
        if twin:
            assert any(ty == y and tx > x for y, x in at for ty, tx in drawn_at(twin)), (image_id, twin)
    return [tuple(e) for e in entries]


def test_grayscale_and_odd_size_agree_with_cleanvisions_imagelab_on_the_files(tmp_path):
    """cleanvision's own Imagelab, on the source files, against clean's scores of the same images:
    grey files (mode L; and an RGB file whose channels are equal, which cleanvision calls colour)
    and files far from the usual size."""
    from cleanvision import Imagelab

    from .test_stages import class_folder_dataset, shape_image

    root = class_folder_dataset(tmp_path / "shapes", per_class=8)
    save(root / "disc/grey.png", shape_image("disc", seed=20).convert("L"))
    save(root / "square/grey_as_rgb.png", shape_image("square", seed=21).convert("L").convert("RGB"))
    save(root / "square/huge.png", shape_image("square", size=(400, 300), seed=22))
    save(root / "disc/tiny.png", shape_image("disc", size=(8, 6), seed=23))
    extract(raw_from_folder(tmp_path, root), tmp_path / "extracted", 100)
    ingest(tmp_path / "extracted", tmp_path / "interim", {"train": 0.6, "valid": 0.2, "test": 0.2}, seed=0)
    preprocess(tmp_path / "interim/manifest.csv", tmp_path / "extracted", tmp_path / "processed",
               {"size": [32, 32], "resize": "pad", "color": "rgb"}, 64)  # fmt: skip
    embed(tmp_path / "processed", tmp_path / "features.npz", "histogram")
    clean(tmp_path / "processed", tmp_path / "features.npz", tmp_path / "clean", clean_params(), seed=0)
    ours = pd.read_csv(tmp_path / "clean/scores.csv", keep_default_na=False).set_index("id")

    files = sorted(root.rglob("*.png"))  # the source folder download zipped
    lab = Imagelab(filepaths=[str(f) for f in files])
    lab.find_issues({"grayscale": {}, "odd_size": {}}, n_jobs=1, verbose=False)
    theirs = lab.issues.set_axis([f.relative_to(files[0].parents[1]).as_posix() for f in files])
    assert sorted(ours.index) == sorted(theirs.index)
    np.testing.assert_allclose(ours.odd_size_score.reindex(theirs.index), theirs.odd_size_score, atol=1e-6)
    flagged = {i for i, f in ours["flags"].items() if "odd_size" in f}
    assert flagged == set(theirs.index[theirs.is_odd_size_issue]) == {"square/huge.png", "disc/tiny.png"}
    grey = {i for i, f in ours["flags"].items() if "grayscale" in f}
    assert set(theirs.index[theirs.is_grayscale_issue]) == {"disc/grey.png"}
    assert grey == {"disc/grey.png", "square/grey_as_rgb.png"}  # the same pixels, whatever the file's mode


def test_quality_actions_remove_flag_or_ignore(dirty, tmp_path):
    _, removed = run_clean(dirty, tmp_path / "a", holdout="same", **{"quality.dark.action": "remove"})
    assert removed.loc["valid/pen/night.png", "reason"] == "dark"
    assert removed.loc["valid/pen/night.png", "score"] < 0.32
    summary, removed = run_clean(
        dirty, tmp_path / "b", **{"quality.low_information.action": "off", "quality.dark.action": "off"}
    )
    assert "dark" not in summary["flagged_by_kind"]
    kept = pd.read_csv(tmp_path / "b/index.csv", keep_default_na=False).set_index("id")
    assert "outlier" in kept["flags"]["train/pencil/blank.png"]  # the outlier step still sees it


def test_duplicate_detection_can_be_switched_off(dirty, tmp_path):
    summary, removed = run_clean(
        dirty, tmp_path / "c", **{"duplicates.exact": False, "duplicates.phash_bits": None, "outliers.method": "none"}
    )
    assert set(removed.reason) == {"low_information"}


def test_near_duplicates_by_embedding_cosine(dirty, tmp_path):
    _, removed = run_clean(
        dirty, tmp_path / "d", **{"duplicates.phash_bits": None, "duplicates.cosine": 0.999, "duplicates.exact": False}
    )
    # byte copies have identical features: found as near copies, with the cosine in the detail
    assert removed.loc["test/pen/pen_01_again.png", "reason"] == "near_leak"
    assert removed.loc["train/pen/pen_00_copy.png", "twin"] == "train/pen/pen_00.png"
    assert removed.loc["train/pen/pen_00_copy.png", "detail"].startswith("cosine")


@pytest.mark.parametrize("max_bits", [0, 3, 6, 10])
def test_phash_search_finds_exactly_the_pairs_a_plain_double_loop_finds(max_bits):
    """The multi-index search (max_bits <= 7) and the blockwise one (above) against every pair
    compared by hand: clusters of near hashes, a crowded bucket of equal hashes, strangers."""
    from specimen.clean.duplicates import phash_pairs

    rng = np.random.default_rng(max_bits)
    centres = rng.integers(0, 2**63, 40, dtype=np.uint64)
    hashes = np.repeat(centres, 8)
    for _ in range(5):  # flip up to five random bits in about half of them
        hit = rng.random(len(hashes)) < 0.5
        hashes[hit] ^= np.uint64(1) << rng.integers(0, 64, hit.sum()).astype(np.uint64)
    hashes = np.r_[hashes, np.zeros(30, np.uint64), rng.integers(0, 2**63, 50, dtype=np.uint64)]
    base = rng.integers(0, 256, (len(centres) + 2, 32 * 32)).astype(np.float32)
    owner = np.r_[np.repeat(np.arange(len(centres)), 8), np.full(30, len(centres)), np.full(50, len(centres) + 1)]
    thumbs = np.clip(
        base[owner] + rng.normal(0, 1, (len(hashes), 32 * 32)) * rng.uniform(5, 40, (len(hashes), 1)), 0, 255
    ).astype(np.uint8)
    expected = []
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= max_bits:
                r = np.corrcoef(thumbs[i].astype(float), thumbs[j].astype(float))[0, 1]
                if r >= 0.9:
                    expected.append((i, j, r))
    pairs, corr = phash_pairs(hashes, thumbs, max_bits, 0.9)
    assert len(expected) > 20  # the planted pairs are there to be found
    assert [tuple(p) for p in pairs.tolist()] == [(i, j) for i, j, _ in expected]
    np.testing.assert_allclose(corr, [r for *_, r in expected], rtol=1e-4)


def test_copies_with_different_labels_are_each_a_label_conflict_naming_the_other():
    from specimen.clean.duplicates import exact_duplicates

    index = pd.DataFrame(
        {
            "id": ["train/a/1.png", "train/b/1.png", "valid/a/2.png", "train/a/2.png", "test/a/3.png", "test/b/9.png"],
            "split": ["train", "train", "valid", "train", "test", "test"],
            "label": ["a", "b", "a", "a", "a", "b"],
            "sha256": ["x", "x", "y", "y", "z", "w"],
        }
    )
    out = exact_duplicates(index).set_index("id")
    assert out.reason.to_dict() == {
        "train/a/1.png": "label_conflict",
        "train/b/1.png": "label_conflict",
        "valid/a/2.png": "leak",
    }
    assert out.twin.to_dict() == {
        "train/a/1.png": "train/b/1.png",
        "train/b/1.png": "train/a/1.png",
        "valid/a/2.png": "train/a/2.png",
    }
    assert out.detail["train/b/1.png"] == "same sha256, labelled a, b"


def cloud(rng, centre, n, dims=16):
    return rng.normal(centre, 0.05, (n, dims))


def test_knn_is_cleanlabs_rule():
    from cleanlab.outlier import OutOfDistribution
    from scipy.stats import iqr

    rng = np.random.default_rng(0)
    x = np.abs(np.vstack([cloud(rng, 1.0, 80), [np.r_[np.ones(8) * 3, np.zeros(8)]]]))
    score, flags = outliers(x, {"method": "knn", "k": 5, "iqr_factor": 1.7, "min_ratio": 0}, seed=0)
    # cleanlab's own score is exp(-d / scale) of d, the mean cosine distance to the k nearest others
    ood = OutOfDistribution(params={"k": 5})
    theirs = ood.fit_score(features=x)
    assert np.argmax(score) == np.argmin(theirs) == len(x) - 1
    np.testing.assert_allclose(score, -np.log(theirs) * ood.params["scaling_factor"], rtol=1e-5, atol=1e-9)
    # and what that is, from scipy: the mean of each row's 5 smallest cosine distances to the others
    from scipy.spatial.distance import cdist

    d_all = cdist(x, x, "cosine")
    np.fill_diagonal(d_all, np.inf)
    np.testing.assert_allclose(score, np.sort(d_all, axis=1)[:, :5].mean(axis=1), rtol=1e-5, atol=1e-9)
    # Datalab's outlier rule on those distances: above Q3 + (1 / threshold - 1) * IQR, threshold 1 / 2.7 here
    d, threshold = -np.log(theirs) * ood.params["scaling_factor"], 1 / 2.7
    np.testing.assert_array_equal(flags, d > np.percentile(d, 75) + (1 / threshold - 1) * iqr(d))
    assert flags[-1]


def test_knn_says_none_where_no_image_is_far_from_the_rest():
    """The IQR fence alone always cuts the tail; min_ratio (times the median score) lets the rule
    find nothing in a set of ordinary images, and still find the one far point."""
    rng = np.random.default_rng(0)
    ordinary = np.abs(cloud(rng, 1.0, 200))
    params = {"method": "knn", "k": 5, "iqr_factor": 1.7}
    _, tail = outliers(ordinary, {**params, "min_ratio": 0}, seed=0)
    score, none = outliers(ordinary, {**params, "min_ratio": 3}, seed=0)
    assert tail.sum() >= 1 and none.sum() == 0 and score.max() < 3 * np.median(score)
    far = np.vstack([ordinary, [np.r_[np.ones(8) * 3, np.zeros(8)]]])
    score, found = outliers(far, {**params, "min_ratio": 3}, seed=0)
    assert found.tolist() == [False] * 200 + [True]


@pytest.mark.parametrize("method", ["lof", "isolation_forest"])
def test_lof_and_isolation_forest_score_the_far_point_highest(method):
    rng = np.random.default_rng(0)
    x = np.abs(np.vstack([cloud(rng, 1.0, 80), [np.r_[np.ones(8) * 3, np.zeros(8)]]]))
    score, flags = outliers(x, {"method": method, "k": 10, "contamination": 0.02}, seed=0)
    assert np.argmax(score) == len(x) - 1 and flags[-1] and flags.sum() <= 2


def test_class_scope_finds_an_image_far_from_its_own_class():
    rng = np.random.default_rng(0)
    a, b = np.r_[np.ones(8), np.zeros(8)], np.r_[np.zeros(8), np.ones(8)]
    x = np.abs(np.vstack([rng.normal(a, 0.05, (40, 16)), rng.normal(b, 0.05, (40, 16))]))
    labels = np.array(["a"] * 40 + ["b"] * 40)
    labels[0] = "b"  # an "a" picture filed under b: close to many images, far from its class
    params = {"method": "knn", "k": 5, "iqr_factor": 1.7, "min_ratio": 3}
    _, _, flagged = outlier_scores(x, labels, {**params, "scope": "all"}, 0)
    assert not flagged[0]
    overall, by_class, flagged = outlier_scores(x, labels, {**params, "scope": "class"}, 0)
    assert flagged[0] and np.isnan(overall).all() and np.argmax(by_class) == 0


def test_nearest_skips_each_row_itself_even_among_identical_rows():
    x = np.array([[1.0, 0], [1.0, 0], [1.0, 0], [0, 1.0]])
    dist, idx = nearest(x, 2)
    assert all(i not in row for i, row in enumerate(idx))
    np.testing.assert_allclose(dist[:3, 0], 0.0, atol=1e-7)


def clusters(rng, n, dims=32, centres=25):
    """n rows around `centres` centres of unequal spread, all positive (as histograms are)."""
    centre = rng.integers(0, centres, n)
    spread = rng.uniform(0.1, 0.6, centres)[centre, None]
    return np.abs(rng.normal(size=(centres, dims))[centre] + spread * rng.normal(size=(n, dims)))


def test_the_indexed_search_finds_what_comparing_every_pair_finds():
    """Beyond neighbours.EXACT_ROWS rows faiss's inverted-file index finds the candidates: against
    scipy's cosine distances over every pair, it finds at least 99 % of each row's true neighbours
    here, and each distance it reports is the true distance to the row it names."""
    from scipy.spatial.distance import cdist

    x = clusters(np.random.default_rng(1), 3000)
    dist, idx = nearest(x, 10, np.float64, exact_rows=0)
    d_all = cdist(x, x, "cosine")
    np.fill_diagonal(d_all, np.inf)
    true = np.argsort(d_all, axis=1, kind="stable")[:, :10]
    found = np.mean([len(set(a) & set(b)) for a, b in zip(idx, true)]) / 10
    assert found >= 0.99, found
    assert not (idx == np.arange(len(x))[:, None]).any() and (idx >= 0).all()
    np.testing.assert_allclose(dist, np.take_along_axis(d_all, idx, axis=1), rtol=0, atol=1e-12)
    assert (np.diff(dist, axis=1) >= 0).all()  # nearest first
    # the same neighbours and distances on one thread or two (faiss's OpenMP and the BLAS)
    import faiss
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        faiss.omp_set_num_threads(1)
        try:
            one = nearest(x, 10, np.float64, exact_rows=0)
        finally:
            faiss.omp_set_num_threads(2)
    np.testing.assert_array_equal(one[1], idx)
    np.testing.assert_array_equal(one[0], dist)


def test_a_row_whose_probed_lists_hold_too_few_rows_is_searched_exactly(monkeypatch):
    """Compared with one list only (NPROBE 1), of about 20 rows, no row has the 61 candidates its 60
    neighbours need: each is searched exactly instead, and gets scipy's neighbours."""
    from scipy.spatial.distance import cdist

    import specimen.clean.neighbours as neighbours

    x = clusters(np.random.default_rng(2), 400, dims=8)
    monkeypatch.setattr(neighbours, "NPROBE", 1)
    dist, idx = nearest(x, 60, np.float64, exact_rows=0)
    d_all = cdist(x, x, "cosine")
    np.fill_diagonal(d_all, np.inf)
    np.testing.assert_allclose(dist, np.sort(d_all, axis=1)[:, :60], rtol=0, atol=1e-12)
    found = np.mean([len(set(a) & set(b)) for a, b in zip(idx, np.argsort(d_all, axis=1)[:, :60])])
    assert found == 60


def test_knn_flags_through_the_index_what_comparing_every_pair_flags(monkeypatch):
    """A neighbour the index misses only raises a score: the knn rule scores the images over its cut
    again comparing every pair, so it flags what the exact search flags, though the index alone
    (4 lists probed of 45) flags more."""
    import specimen.clean.neighbours as neighbours
    from specimen.clean.outliers import knn_cut

    rng = np.random.default_rng(3)
    x = np.vstack([clusters(rng, 2000), np.abs(rng.normal(0, 3, (20, 32)))])  # 20 far from the clusters
    params = {"method": "knn", "k": 10, "iqr_factor": 1.7, "min_ratio": 0}
    exact, exact_flags = outliers(x, params, seed=0)
    monkeypatch.setattr(neighbours, "EXACT_ROWS", 0)
    monkeypatch.setattr(neighbours, "NPROBE", 4)
    alone = nearest(x, 10, np.float64)[0].mean(axis=1)
    assert (alone >= exact - 1e-12).all() and (alone > knn_cut(alone, params)).sum() > exact_flags.sum()
    score, flags = outliers(x, params, seed=0)
    np.testing.assert_array_equal(flags, exact_flags)
    np.testing.assert_allclose(score[flags], exact[flags], rtol=0, atol=1e-12)


def test_clean_writes_the_same_tables_through_the_index(dirty, tmp_path, monkeypatch):
    """With every search through faiss's index (EXACT_ROWS 0), clean removes, flags and scores as it does
    comparing every pair (on this small set the index probes every list)."""
    import specimen.clean.neighbours as neighbours

    cosine = {"duplicates.cosine": 0.995}  # the near-copy search by embedding too
    monkeypatch.setattr(neighbours, "EXACT_ROWS", 0)
    run_clean(dirty, tmp_path / "indexed", **cosine)
    monkeypatch.setattr(neighbours, "EXACT_ROWS", 10**9)
    _, removed = run_clean(dirty, tmp_path / "exact", **cosine)
    for name in ("removed.csv", "scores.csv", "index.csv"):
        exact = pd.read_csv(tmp_path / "exact" / name, keep_default_na=False)
        indexed = pd.read_csv(tmp_path / "indexed" / name, keep_default_na=False)
        pd.testing.assert_frame_equal(indexed, exact, check_exact=False, rtol=0, atol=1e-9)
    assert removed.detail.str.startswith("cosine").any()
    assert "outlier" in (tmp_path / "indexed/index.csv").read_text()


def test_clean_refuses_features_of_another_index(dirty, tmp_path):
    tmp, _ = dirty
    np.savez(tmp_path / "f.npz", ids=np.array(["other"]), features=np.zeros((1, 512), np.float32))
    with pytest.raises(SpecimenError, match="re-run embed"):
        clean(tmp / "processed", tmp_path / "f.npz", tmp_path / "clean", clean_params(), 0)


def test_the_same_bytes_with_one_thread_or_two(dirty, tmp_path):
    """As on a machine with one core and one with two: clean in fresh processes whose BLAS and OpenMP
    default to 1 and 2 threads writes the same removed.csv, scores.csv, index.csv and the label check's
    summary (its K-fold model's out-of-sample accuracy to six places); inside, clean's neighbour
    search, outlier scores and K-fold model run on specimen.clean.neighbours.THREADS threads."""
    import sys

    tmp, _ = dirty
    script = (
        "import json, sys; from pathlib import Path; from specimen.clean.clean import clean; "
        "clean(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4]), 0)"
    )
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        args = [tmp / "processed", tmp / "features/histogram.npz", tmp_path / threads, json.dumps(clean_params())]
        subprocess.run([sys.executable, "-c", script, *map(str, args)], check=True, env=env, timeout=300)
    for name in ("removed.csv", "scores.csv", "index.csv", "label_issues.csv", "summary.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
    assert json.loads((tmp_path / "1/summary.json").read_text())["label_issues"]["checked"]  # it ran

    from threadpoolctl import threadpool_info

    from specimen.clean.neighbours import THREADS, pinned_threads

    nearest(np.eye(4), 1)  # scikit-learn's OpenMP and numpy's BLAS loaded, so that both are listed
    with pinned_threads():
        assert {pool["num_threads"] for pool in threadpool_info()} == {THREADS}


def test_cli_reports_what_was_removed_in_one_line(dirty, tmp_path):
    tmp, _ = dirty
    proc = subprocess.run(
        [
            "specimen",
            "clean",
            str(tmp / "processed"),
            str(tmp / "features/histogram.npz"),
            str(tmp_path / "clean"),
            "--params",
            str(ROOT / "params.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(
        "specimen clean: 95 of 101 images kept; removed: duplicate 1, leak 1, low_information 2, near_duplicate 1, "
        "near_leak 1; flagged: dark 1, odd_aspect_ratio 1, odd_size 1, outlier 2; labels: 0 likely wrong (see "
    ), last
