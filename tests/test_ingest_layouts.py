"""ingest on small generated replicas of the datasets people bring: class folders, split folders
with a Kaggle CSV, JSON-lines files, a CSV with two label columns; and the presets that name them."""

import json
import math
import re
import zlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from specimen import SpecimenError, cli
from specimen.data.download import download
from specimen.data.extract import extract
from specimen.data.ingest import ingest
from specimen.params import load

ROOT = Path(__file__).resolve().parents[1]
SPLIT = {"train": 0.6, "valid": 0.2, "test": 0.2}
COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (220, 200, 40), (150, 40, 160), (30, 170, 170)]


def image(path: Path, seed: int = 0, size=(24, 18), fmt=None) -> Path:
    """A tiny real image whose colour depends on the seed (PNG or JPEG from the suffix), its top
    rows marked by its folder and name, so that no two files are copies (ingest splits copies together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    im = Image.new("RGB", size, COLOURS[seed % len(COLOURS)])
    mark = zlib.crc32(f"{path.parent.name}/{path.name}".encode())
    for bit in range(32):  # 8 x 8 blocks, so that JPEG keeps them apart
        if mark >> bit & 1:
            x, y = 8 * (bit % max(1, size[0] // 8)), 8 * (bit // max(1, size[0] // 8))
            im.paste((255, 255, 255), (x, y, x + 8, y + 8))
    im.save(path, format=fmt)
    return path


def listed(tmp_path: Path) -> Path:
    """The replica built under tmp_path/extracted/<name>/ as a user's would reach ingest: zipped by
    download (a local: folder) and listed by extract, its files read from that zip."""
    (folder,) = (tmp_path / "extracted").iterdir()
    download(f"local:{folder}", tmp_path / "raw")
    extract(tmp_path / "raw", tmp_path / "listed", 1000)
    return tmp_path / "listed"


def run(tmp_path: Path, name="out", **kw) -> pd.DataFrame:
    return ingest(listed(tmp_path), tmp_path / name, SPLIT, seed=3, **kw)


def files_on_disk(tmp_path: Path) -> int:
    return sum(p.is_file() for p in (tmp_path / "extracted").rglob("*"))


def reasons(m: pd.DataFrame) -> dict:
    return dict(zip(m.id, m.reason))


def accounted(m: pd.DataFrame, tmp_path: Path, listed_missing: int) -> bool:
    return m.status.isin(["ok", "rejected", "labels"]).all() and len(m) == files_on_disk(tmp_path) + listed_missing


# -- replicas ------------------------------------------------------------------------------------


def oxford_flowers(tmp_path: Path, per_class=5) -> Path:
    root = tmp_path / "extracted/17flowers"
    for c, cls in enumerate(("bluebell", "buttercup", "colts foot")):
        for i in range(per_class):
            image(root / cls / f"image_{c * 100 + i:04d}.jpg", seed=c)
    return root


SPIDERS = ("Black Widow", "Blue Tarantula", "Peacock Spider")


def yikes_spiders(tmp_path: Path, per_split=(8, 2, 2)) -> Path:
    """train/valid/test/<class>/ folders and spiders.csv (class id, filepaths, labels, data set)."""
    root = tmp_path / "extracted/yikes-spiders"
    rows = []
    for split, n in zip(("train", "valid", "test"), per_split):
        for c, cls in enumerate(SPIDERS):
            for i in range(n):
                rel = f"{split}/{cls}/{i + 1:03d}.jpg"
                image(root / rel, seed=c)
                rows.append({"class id": c, "filepaths": rel, "labels": cls, "data set": split})
    pd.DataFrame(rows).to_csv(root / "spiders.csv", index=False)
    return root


def indo_fashion(tmp_path: Path, per_split=(6, 2, 2)) -> Path:
    """images/train|val|test/<n>.jpeg and train_data.json, val_data.json, test_data.json."""
    root = tmp_path / "extracted/indo-fashion"
    n = 0
    for split, count in zip(("train", "val", "test"), per_split):
        lines = []
        for c, cls in enumerate(("saree", "lehenga", "women_kurta")):
            for _ in range(count):
                rel = f"images/{split}/{n}.jpeg"
                image(root / rel, seed=c)
                lines.append(
                    json.dumps(
                        {
                            "image_url": f"https://example.org/{n}.jpg",
                            "image_path": rel,
                            "brand": "Brand, Inc.",
                            "product_title": "a garment",
                            "class_label": cls,
                        }
                    )
                )
                n += 1
        (root / f"{split}_data.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


LIVING = {"oak/quercus": "plant", "Löwenzahn, gemein": "plant", "honey bee": "animal", "robin": "animal"}


def living_things(tmp_path: Path, per_class=10, shuffle_seed=None) -> Path:
    """images/<name>.png and labels.csv (filename, coarse, fine) listing bare file names."""
    root = tmp_path / "extracted/living-things"
    rows = []
    for c, (fine, coarse) in enumerate(LIVING.items()):
        for i in range(per_class):
            name = f"img_{c}_{i:02d}.png"
            image(root / "images" / name, seed=c)
            rows.append({"filename": name, "coarse": coarse, "fine": fine})
    table = pd.DataFrame(rows)
    if shuffle_seed is not None:
        table = table.sample(frac=1, random_state=shuffle_seed)
    table.to_csv(root / "labels.csv", index=False)
    return root


ANIMALS = {"cane": 12, "gatto": 7, "scoiattolo": 4}  # imbalanced, Italian names


def animals10(tmp_path: Path) -> Path:
    """raw-img/<italian class>/ beside translate.py, as the Kaggle archive ships it."""
    root = tmp_path / "extracted/animals10"
    for c, (cls, n) in enumerate(ANIMALS.items()):
        for i in range(n):
            image(root / "raw-img" / cls / f"OIP-{c}{i:03d}.jpeg", seed=c)
    (root / "translate.py").write_text('translate = {"cane": "dog", "gatto": "cat"}\n')
    return root


def inat_subset(tmp_path: Path) -> Path:
    root = tmp_path / "extracted/inat/inat"  # a wrapper folder, as archives often have
    for c, cls in enumerate(("Apis mellifera", "Bombus terrestris")):
        for i in range(5):
            image(root / cls / f"{i}.jpg", seed=c, size=(320, 240))
    return root


def eol_families(tmp_path: Path, classes=12) -> Path:
    root = tmp_path / "extracted/eol"
    for c in range(classes):
        for i in range(3 + c % 5):  # 3 to 7 images per class: many small, unequal classes
            image(root / f"Family{c:02d}dae" / f"{i}.jpg", seed=c)
    return root


# -- class folders (Oxford 17, Animals-10, iNat, EOL) -------------------------------------------


def test_oxford_flowers_class_folders_get_a_stratified_split(tmp_path):
    oxford_flowers(tmp_path)
    m = run(tmp_path)
    assert (m.status == "ok").sum() == 15 and accounted(m, tmp_path, 0)
    counts = m.groupby("label").split.value_counts().unstack()
    assert counts.loc[:, ["train", "valid", "test"]].values.tolist() == [[3, 1, 1]] * 3
    assert json.loads((tmp_path / "out/classes.json").read_text()) == {
        "classes": ["bluebell", "buttercup", "colts foot"]
    }


def test_animals10_class_folders_below_raw_img_with_a_script_beside_them(tmp_path):
    animals10(tmp_path)
    m = run(tmp_path)
    ok = m[m.status == "ok"]
    assert ok.label.value_counts().to_dict() == ANIMALS
    assert reasons(m)["translate.py"] == "not in raw-img/, the folder of the class folders"
    assert set(ok.split) == {"train", "valid", "test"} and accounted(m, tmp_path, 0)
    assert ok.id.str.startswith("raw-img/").all()


def test_inat_large_jpegs_and_eol_many_small_classes(tmp_path):
    inat_subset(tmp_path / "a")
    m = run(tmp_path / "a")
    ok = m[m.status == "ok"]
    assert len(ok) == 10 and (ok.width == 320).all() and set(ok.label) == {"Apis mellifera", "Bombus terrestris"}
    eol_families(tmp_path / "b")
    m = run(tmp_path / "b")
    ok = m[m.status == "ok"]
    assert ok.label.nunique() == 12 and len(ok) == sum(3 + c % 5 for c in range(12))
    assert set(ok[ok.split == "train"].label) == set(ok.label)  # every class in train


def test_max_pixels_rejects_bombs_and_pillow_bomb_errors_do_not_crash(tmp_path):
    root = oxford_flowers(tmp_path, per_class=3)
    image(root / "bluebell/big.png", size=(50, 40))  # 2,000 pixels: our own check
    image(root / "bluebell/huge.png", size=(100, 100))  # 10,000 > twice the limit: Pillow's error
    before = Image.MAX_IMAGE_PIXELS
    m = run(tmp_path, max_pixels=1000)
    r = reasons(m)
    assert r["bluebell/big.png"] == "decompression bomb: 2000 pixels > image.max_pixels"
    assert r["bluebell/huge.png"] == "decompression bomb: 10000 pixels > image.max_pixels"
    assert (m.status == "ok").sum() == 9 and Image.MAX_IMAGE_PIXELS == before


# -- Kaggle CSV beside split folders (yikes spiders) ---------------------------------------------


def test_spiders_csv_keeps_its_splits_and_labels_with_spaces(tmp_path):
    yikes_spiders(tmp_path)
    m = run(tmp_path)
    ok = m[m.status == "ok"]
    assert len(ok) == 36 and sorted(ok.label.unique()) == list(SPIDERS)
    assert ok.split.value_counts().to_dict() == {"train": 24, "valid": 6, "test": 6}
    assert (ok.split == ok.id.str.split("/").str[0]).all()
    assert reasons(m)["spiders.csv"] == "labels file" and m.set_index("id").status["spiders.csv"] == "labels"
    assert json.loads((tmp_path / "out/classes.json").read_text()) == {"classes": list(SPIDERS)}
    assert accounted(m, tmp_path, 0)


def test_spiders_csv_faults_are_rejected_rows_with_reasons(tmp_path):
    root = yikes_spiders(tmp_path)
    image(root / "train/Black Widow/unlisted.jpg")
    image(root / "train/Blue Tarantula/holdout.jpg")
    table = pd.read_csv(root / "spiders.csv", dtype=str)
    extra = pd.DataFrame(
        [
            ["0", "train/Black Widow/404.jpg", "Black Widow", "train"],  # listed, missing
            ["0", "../outside.jpg", "Black Widow", "train"],  # leaves the root
            ["1", "train/Blue Tarantula/holdout.jpg", "Blue Tarantula", "holdout"],  # unknown split
            ["0", "train/Black Widow/001.jpg", "Black Widow", "train"],  # listed twice, same label
            ["2", "train/Blue Tarantula/001.jpg", "Peacock Spider", "train"],  # listed twice, other label
        ],
        columns=table.columns,
    )
    pd.concat([table, extra]).to_csv(root / "spiders.csv", index=False)
    m = run(tmp_path).set_index("id")
    r = m.reason
    assert r["train/Black Widow/unlisted.jpg"] == "not listed in spiders.csv"
    assert r["train/Black Widow/404.jpg"] == "listed in spiders.csv but missing"
    assert r["../outside.jpg"] == "listed in spiders.csv with a path that leaves the dataset root"
    assert r["train/Blue Tarantula/holdout.jpg"].startswith("unknown split 'holdout' in column 'data set'")
    assert (m.status["train/Black Widow/001.jpg"], r["train/Black Widow/001.jpg"]) == (
        "ok",
        "listed twice in spiders.csv",
    )
    assert (m.status["train/Blue Tarantula/001.jpg"], r["train/Blue Tarantula/001.jpg"]) == (
        "rejected",
        "listed twice with different labels",
    )
    written = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str, keep_default_na=False).set_index("id")
    assert written.path["train/Black Widow/404.jpg"] == "" and written.bytes["train/Black Widow/404.jpg"] == ""
    assert (m.status == "ok").sum() == 35
    assert accounted(m.reset_index(), tmp_path, listed_missing=2)


def test_listed_paths_may_add_a_wrapper_folder_or_use_backslashes(tmp_path):
    root = yikes_spiders(tmp_path, per_split=(3, 0, 0))
    table = pd.read_csv(root / "spiders.csv", dtype=str)
    table["filepaths"] = "/kaggle/input/yikes/" + table.filepaths.str.replace("/", "\\")
    table.to_csv(root / "spiders.csv", index=False)
    m = run(tmp_path)
    assert (m.status == "ok").sum() == 9 and accounted(m, tmp_path, 0)


def test_merge_train_valid_resplits_train_and_valid_and_keeps_test(tmp_path):
    yikes_spiders(tmp_path, per_split=(9, 1, 2))
    given = run(tmp_path, "given")
    merged = run(tmp_path, "merged", merge_train_valid=True)
    assert merged.id.tolist() == given.id.tolist()
    test = given.split == "test"
    assert (merged.split[test] == "test").all() and (merged.split[~test] != "test").all()
    pool = merged[(merged.status == "ok") & ~test]
    valid_share = SPLIT["valid"] / (SPLIT["train"] + SPLIT["valid"])
    assert (pool.split == "valid").sum() == math.ceil(len(pool) * valid_share)  # 30 * 0.25 -> 8
    per_class = pool.groupby("label").split.value_counts().unstack()
    assert per_class["valid"].between(2, 3).all()  # stratified: 10 per class, a quarter each
    assert (given[given.status == "ok"].split.value_counts()["valid"]) == 3


# -- JSON lines (Indo Fashion) -------------------------------------------------------------------


def test_indo_fashion_json_lines_split_from_the_file_names(tmp_path):
    root = indo_fashion(tmp_path)
    image(root / "images/train/stray.jpeg")
    m = run(tmp_path)
    ok = m[m.status == "ok"]
    assert ok.split.value_counts().to_dict() == {"train": 18, "valid": 6, "test": 6}
    assert (ok.split == ok.id.str.split("/").str[1].map({"train": "train", "val": "valid", "test": "test"})).all()
    labels = m[m.status == "labels"]
    assert sorted(labels.id) == ["test_data.json", "train_data.json", "val_data.json"]
    assert reasons(m)["images/train/stray.jpeg"] == "not listed in test_data.json, train_data.json, val_data.json"
    assert sorted(ok.label.unique()) == ["lehenga", "saree", "women_kurta"] and accounted(m, tmp_path, 0)


# -- a CSV with two label columns (living things) ------------------------------------------------


def test_living_things_two_label_columns_is_a_clear_error(tmp_path):
    living_things(tmp_path)
    with pytest.raises(SpecimenError) as e:
        run(tmp_path)
    message = str(e.value)
    assert "\n" not in message and "dataset.columns.label" in message and "coarse, fine" in message


def test_living_things_named_label_column_stratified_split_and_labels_survive(tmp_path):
    living_things(tmp_path)
    m = run(tmp_path, columns={"path": None, "label": "fine", "split": None})
    ok = m[m.status == "ok"]
    assert len(ok) == 40 and accounted(m, tmp_path, 0)
    assert ok.id.str.startswith("images/").all()  # bare file names found below images/
    counts = ok.groupby("label").split.value_counts().unstack()
    assert counts.loc[:, ["train", "valid", "test"]].values.tolist() == [[6, 2, 2]] * 4
    written = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str, keep_default_na=False)
    assert set(written[written.status == "ok"].label) == set(LIVING)
    assert json.loads((tmp_path / "out/classes.json").read_text())["classes"] == sorted(LIVING)
    coarse = run(tmp_path, "coarse", labels_file="*.csv", columns={"label": "coarse"})
    assert set(coarse[coarse.status == "ok"].label) == {"animal", "plant"}


def test_manifest_is_byte_identical_across_runs_and_listing_orders(tmp_path):
    living_things(tmp_path / "a", shuffle_seed=None)
    living_things(tmp_path / "b", shuffle_seed=7)
    cols = {"label": "fine"}
    run(tmp_path / "a", "one", columns=cols)
    run(tmp_path / "a", "two", columns=cols)
    run(tmp_path / "b", "one", columns=cols)
    one = (tmp_path / "a/one/manifest.csv").read_bytes()
    assert one == (tmp_path / "a/two/manifest.csv").read_bytes()
    a = pd.read_csv(tmp_path / "a/one/manifest.csv", dtype=str, keep_default_na=False)
    b = pd.read_csv(tmp_path / "b/one/manifest.csv", dtype=str, keep_default_na=False)
    assert a.drop(columns=["sha256", "bytes"]).equals(
        b.drop(columns=["sha256", "bytes"])
    )  # CSV bytes differ, splits do not


# -- detection and params errors -----------------------------------------------------------------


def test_two_csvs_at_the_root_is_a_clear_error_naming_them(tmp_path):
    root = yikes_spiders(tmp_path, per_split=(2, 1, 1))
    (root / "copy.csv").write_bytes((root / "spiders.csv").read_bytes())
    with pytest.raises(
        SpecimenError, match=r"several possible labels files \(copy.csv, spiders.csv\): set dataset.labels_file"
    ):
        run(tmp_path)
    m = run(tmp_path, labels_file="spiders.csv")
    assert reasons(m)["copy.csv"] == "not listed in spiders.csv"


def test_metadata_csv_without_a_path_column_leaves_class_folders_alone(tmp_path):
    root = oxford_flowers(tmp_path, per_class=3)
    pd.DataFrame({"species": ["a", "b"], "count": ["1", "2"]}).to_csv(root / "counts.csv", index=False)
    m = run(tmp_path)
    assert (m.status == "ok").sum() == 9 and reasons(m)["counts.csv"] == "not in a <class>/ folder"


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"labels_file": "nope/*.csv"}, "dataset.labels_file: 'nope/*.csv' matches no file"),
        ({"labels_file": "../x.csv"}, "must be a path inside the dataset root"),
        (
            {"labels_file": "spiders.csv", "columns": {"label": "species name"}},
            "dataset.columns.label: 'species name' is not a column of spiders.csv",
        ),
    ],
)
def test_params_that_do_not_fit_the_dataset_are_one_line_errors(tmp_path, kw, message):
    yikes_spiders(tmp_path, per_split=(2, 1, 1))
    with pytest.raises(SpecimenError, match=re.escape(message)):
        run(tmp_path, **kw)


# -- presets -------------------------------------------------------------------------------------

PRESETS = {
    "oxford17-flowers": oxford_flowers,
    "yikes-spiders": yikes_spiders,
    "indo-fashion": indo_fashion,
    "living-things": living_things,
    "animals10": animals10,
    "inat-subset": inat_subset,
    "eol-families": eol_families,
}


def test_every_preset_is_listed_here():
    assert sorted(p.stem for p in (ROOT / "presets").glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates_and_ingests_its_replica_through_the_cli(tmp_path, name, capsys):
    preset = ROOT / "presets" / f"{name}.yaml"
    p = load(preset)
    assert p["dataset"]["source"].startswith("kaggle:") and p["train"]["models"] == ["small_cnn"]
    PRESETS[name](tmp_path)
    assert cli.main(["ingest", "--params", str(preset), str(listed(tmp_path)), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    m = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str, keep_default_na=False)
    ok = m[m.status == "ok"]
    # the summary a user reads counts the manifest's rows; a labels file is not called rejected
    counts = m.status.value_counts()
    summary = re.search(r"(\d+) files: (\d+) images in (\d+) classes, (\d+) rejected(?:, (\d+) labels files?)?", out)
    assert summary, out
    assert [int(g or 0) for g in summary.groups()] == [
        len(m),
        len(ok),
        ok.label.nunique(),
        counts.get("rejected", 0),
        counts.get("labels", 0),
    ]
    assert len(ok) > 0 and set(ok.split) == {"train", "valid", "test"}
    assert (m.status == "labels").any() == bool(p["dataset"]["labels_file"] or any(p["dataset"]["columns"].values()))
