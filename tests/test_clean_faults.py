"""Floors on finding the demo's planted faults with the offline histogram features, and its wrong
labels with a stand-in for a learnt embedding (the figures themselves are printed by
bench/clean_faults.py). Each floor is the default demo's result. An anomaly counts as found when
removed or flagged as an outlier (with histograms, outliers are flagged)."""

import json

import pandas as pd
import pytest
from PIL import Image

from .cleaning import clean_on, demo_through_clean, score_cleaning, source_scan_features


@pytest.fixture(scope="module")
def demo_work(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-clean")


@pytest.fixture(scope="module")
def scores(demo_work):
    return demo_through_clean(demo_work, seed=0)


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_blank_and_noise_images_are_all_found_at_high_precision(scores, kind):
    assert scores[kind]["planted"] == 8
    assert scores[kind]["recall"] == 1.0 and scores[kind]["precision"] >= 0.9, scores[kind]


def test_foreign_photos_are_found_but_for_those_coloured_like_ink_on_paper(scores):
    # 11 of 12 on this demo: the one missed is a crop of pale sky over a dark tree, whose colour
    # histogram is that of ink on paper. Colour alone cannot see it; clip or vgg16 features can.
    assert scores["foreign"]["found"] >= 11 and scores["foreign"]["precision"] >= 0.9, scores["foreign"]


@pytest.mark.parametrize("kind", ["exact_duplicate", "cross_split_duplicate", "near_duplicate", "near_duplicate_leak"])
def test_every_copy_and_leak_is_found_beside_its_twin_with_no_false_pair(scores, kind):
    assert scores[kind]["planted"] >= 6
    assert scores[kind]["found"] == scores[kind]["planted"] and scores[kind]["false"] == 0, scores[kind]


def test_colour_histograms_cannot_vouch_for_labels_so_none_is_named(scores, demo_work):
    """On the demo's digits a K-fold model on colour histograms is near chance: clean names no label
    and says why, rather than flag half the training set."""
    summary = json.loads((demo_work / "data/clean/summary.json").read_text())["label_issues"]
    assert summary["checked"] is False and summary["out_of_sample_accuracy"] < 0.3, summary
    assert "below clean.labels.min_accuracy 0.8" in summary["why"]
    assert pd.read_csv(demo_work / "data/clean/label_issues.csv").empty
    assert scores["mislabelled"]["found"] == 0


@pytest.fixture(scope="module")
def scan_features(scores, demo_work):
    return source_scan_features(demo_work)


def test_wrong_labels_are_found_with_the_digit_drawn_suggested(scan_features, demo_work):
    """With an embedding that sees the digit (the stand-in for clip or vgg16), cleanlab names the
    planted wrong labels, suggests the digit drawn, flags them by default, and shows them in a gallery."""
    truth = json.loads((demo_work / "demo-source/demo.truth.json").read_text())
    out = clean_on(demo_work, scan_features, out="data/clean-scan")
    s = score_cleaning(truth, out)["mislabelled"]
    assert s["planted"] == 16 and s["found"] >= 14 and s["suggested"] == s["found"], s
    issues = pd.read_csv(out / "label_issues.csv", keep_default_na=False, dtype=str)
    wrong = {f["path"] for f in truth["files"] if f["kind"] == "mislabelled"}
    assert sum(issues.id.head(16).isin(wrong)) >= 12  # the likeliest first
    assert (issues.label != issues.suggested_label).all() and set(issues.split) == {"train"}
    assert issues.label_quality.astype(float).is_monotonic_increasing
    kept = pd.read_csv(out / "index.csv", keep_default_na=False, dtype=str).set_index("id")
    assert all("label_issue" in kept.loc[i, "flags"] for i in issues.id)  # flagged, kept, label unchanged
    assert (kept.loc[issues.id, "label"].to_numpy() == issues.label.to_numpy()).all()
    with Image.open(out / "gallery/label_issue.png") as im:
        title, listed = im.text["Title"], im.text["Description"].split("\n")
    assert title.startswith(f"label_issue: {len(issues)} training images flagged")
    assert listed == [f"{r.id} given {r.label} suggested {r.suggested_label}" for r in issues.head(40).itertuples()]


def test_wrong_labels_can_be_removed_or_relabelled(scan_features, demo_work):
    truth = json.loads((demo_work / "demo-source/demo.truth.json").read_text())
    true_label = {f["path"]: f["true_label"] for f in truth["files"] if f["kind"] == "mislabelled"}
    out = clean_on(demo_work, scan_features, {"clean.labels.action": "remove"}, out="data/clean-remove")
    issues = pd.read_csv(out / "label_issues.csv", keep_default_na=False, dtype=str)
    removed = pd.read_csv(out / "removed.csv", keep_default_na=False, dtype=str).set_index("id")
    assert (removed.loc[issues.id, "reason"] == "label_issue").all()
    out = clean_on(demo_work, scan_features, {"clean.labels.action": "relabel"}, out="data/clean-relabel")
    kept = pd.read_csv(out / "index.csv", keep_default_na=False, dtype=str).set_index("id")
    relabelled = [i for i in true_label if i in kept.index and "relabelled" in kept.loc[i, "flags"]]
    assert len(relabelled) >= 14 and all(kept.loc[i, "label"] == true_label[i] for i in relabelled)
