"""Each stage on tiny inputs built here: what it writes, what it refuses, what it accounts for."""

import io
import json
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specimen import SpecimenError
from specimen.clean.balance import balance
from specimen.clean.embed import embed
from specimen.clean.features import colour_histogram
from specimen.data.download import download, parse_source
from specimen.data.extract import extract
from specimen.data.extracted import Extracted
from specimen.data.images import load_image
from specimen.data.ingest import ingest
from specimen.data.preprocess import preprocess

SPLIT = {"train": 0.6, "valid": 0.2, "test": 0.2}


def save(path: Path, image: Image.Image, fmt="PNG", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **kw)
    return path


def shape_image(kind: str, size=(40, 30), seed=0) -> Image.Image:
    """A light image with a dark square or disc: two visually distinct classes."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.full((h, w, 3), 220, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
    if kind == "square":
        cv2.rectangle(img, (w // 4, h // 4), (3 * w // 4, 3 * h // 4), (20, 20, 120), -1)
    else:
        cv2.circle(img, (w // 2, h // 2), min(w, h) // 3, (120, 20, 20), -1)
    return Image.fromarray(img)


def class_folder_dataset(root: Path, per_class=10) -> Path:
    for kind in ("disc", "square"):
        for i in range(per_class):
            save(root / kind / f"{kind}_{i:02d}.png", shape_image(kind, seed=i))
    return root


def raw_from_folder(tmp: Path, folder: Path) -> Path:
    download(f"local:{folder}", tmp / "raw")
    return tmp / "raw"


# -- download ------------------------------------------------------------------------------------


def test_download_demo_writes_zip_truth_and_metadata(tmp_path):
    meta = download("demo", tmp_path / "raw")
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["demo.truth.json", "demo.zip", "source.json"]
    assert meta["sha256"] == json.loads((tmp_path / "raw/source.json").read_text())["sha256"]
    with zipfile.ZipFile(tmp_path / "raw/demo.zip") as zf:
        assert not any("truth" in n for n in zf.namelist())


def test_download_local_folder_zip_depends_only_on_content(tmp_path):
    folder = class_folder_dataset(tmp_path / "flowers", per_class=2)
    a = download(f"local:{folder}", tmp_path / "a")
    for p in folder.rglob("*.png"):  # same bytes, new times
        p.touch()
    b = download(f"local:{folder}", tmp_path / "b")
    assert a["sha256"] == b["sha256"] and a["archive"] == "flowers.zip"


def test_download_local_archive_is_copied(tmp_path):
    tar = tmp_path / "set.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(class_folder_dataset(tmp_path / "set", per_class=1), arcname="set")
    meta = download(f"local:{tar}", tmp_path / "raw")
    assert meta["archive"] == "set.tar.gz" and meta["name"] == "set"
    assert (tmp_path / "raw/set.tar.gz").read_bytes() == tar.read_bytes()


@pytest.mark.parametrize(
    "source, words",
    [
        ("kaggle:gpiosenka/yikes-spiders", "KAGGLE_USERNAME"),
        ("kaggle:nodataset", "kaggle:OWNER/SLUG"),
        ("local:/does/not/exist", "no such file"),
        ("ftp:x", "expected demo"),
    ],
)
def test_download_bad_sources_say_what_to_do(tmp_path, monkeypatch, source, words):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SpecimenError, match=words):
        download(source, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_parse_source():
    assert parse_source("kaggle:owner/slug") == ("kaggle", "owner/slug")
    assert parse_source("demo") == ("demo", "")


# -- extract -------------------------------------------------------------------------------------


def hostile_zip(raw: Path, name: str, payload=b"x", symlink=False) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(raw / "evil.zip", "w") as zf:
        zf.writestr("ok/a.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
        zf.writestr(info, payload)
    (raw / "source.json").write_text(json.dumps({"archive": "evil.zip", "name": "evil"}))
    return raw


@pytest.mark.parametrize(
    "entry, symlink",
    [("../escape.txt", False), ("/abs/escape.txt", False), ("ok/../../escape.txt", False), ("ok/link", True)],
)
def test_extract_refuses_hostile_zip_entries_and_writes_nothing(tmp_path, entry, symlink):
    raw = hostile_zip(tmp_path / "work/raw", entry, b"/etc/passwd" if symlink else b"x", symlink)
    with pytest.raises(SpecimenError, match="refusing entry"):
        extract(raw, tmp_path / "work/extracted", 100)
    assert not (tmp_path / "work/extracted").exists()
    assert not list(tmp_path.rglob("escape.txt"))


def test_extract_refuses_tar_links_and_oversized(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "t.tar", "w") as tf:
        info = tarfile.TarInfo("d/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    (raw / "source.json").write_text(json.dumps({"archive": "t.tar", "name": "t"}))
    with pytest.raises(SpecimenError, match="links"):
        extract(raw, tmp_path / "extracted", 100)
    big = raw / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("c/zeros.bin", bytes(3_000_000))
    (raw / "source.json").write_text(json.dumps({"archive": "big.zip", "name": "big"}))
    with pytest.raises(SpecimenError, match="max_total_mb"):
        extract(raw, tmp_path / "extracted", 1)
    assert not (tmp_path / "extracted").exists()


# -- ingest --------------------------------------------------------------------------------------


def test_ingest_class_folders_stratified_split_and_every_file_accounted(tmp_path):
    folder = class_folder_dataset(tmp_path / "shapes", per_class=10)
    (folder / "disc/readme.txt").write_text("not an image")
    (folder / "stray.png").write_bytes((folder / "disc/disc_00.png").read_bytes())
    (folder / "square/broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    extract(raw_from_folder(tmp_path, folder), tmp_path / "extracted", 100)
    m = ingest(tmp_path / "extracted", tmp_path / "interim", SPLIT, seed=1)
    assert len(m) == 23  # every file, kept or rejected
    reasons = dict(zip(m.id, m.reason))
    assert reasons["disc/readme.txt"] == "not an image"
    assert reasons["stray.png"].startswith("not in a <class>/ folder")
    assert reasons["square/broken.jpg"].startswith("corrupt image")
    ok = m[m.status == "ok"]
    assert len(ok) == 20
    assert ok.groupby("label").split.value_counts().unstack().loc[:, ["train", "valid", "test"]].values.tolist() == [
        [6, 2, 2],
        [6, 2, 2],
    ]
    assert json.loads((tmp_path / "interim/classes.json").read_text()) == {"classes": ["disc", "square"]}
    again = ingest(tmp_path / "extracted", tmp_path / "interim2", SPLIT, seed=1)
    assert (tmp_path / "interim/manifest.csv").read_bytes() == (tmp_path / "interim2/manifest.csv").read_bytes()
    assert again.split.tolist() == m.split.tolist()


def test_ingest_splits_copies_together(tmp_path):
    """Files with the same content go to one split when specimen splits: clean then finds no leak
    that the split itself made, and no class's test set is thinned by leak removal."""
    folder = class_folder_dataset(tmp_path / "shapes", per_class=10)
    for i in range(6):  # three copies each of six images, under other names
        for c in range(3):
            kind = ("disc", "square")[i % 2]
            (folder / kind / f"{kind}_{i:02d}_copy{c}.png").write_bytes(
                (folder / kind / f"{kind}_{i:02d}.png").read_bytes()
            )
    extract(raw_from_folder(tmp_path, folder), tmp_path / "extracted", 100)
    ok = ingest(tmp_path / "extracted", tmp_path / "interim", SPLIT, seed=1).query("status == 'ok'")
    assert len(ok) == 38 and ok.sha256.nunique() == 20
    assert (ok.groupby("sha256").split.nunique() == 1).all(), ok.groupby("sha256").split.unique()
    # the distinct images are split as before, 6:2:2 per class; their copies follow them
    first = ok.drop_duplicates("sha256")
    assert first.groupby("label").split.value_counts().unstack().loc[:, ["train", "valid", "test"]].values.tolist() == [
        [6, 2, 2],
        [6, 2, 2],
    ]


def test_ingest_keeps_provided_splits_below_a_wrapper_folder(tmp_path):
    root = tmp_path / "src/wrapper"
    for split in ("train", "val", "test"):
        for kind in ("disc", "square"):
            save(root / split / kind / f"{split}.png", shape_image(kind))
    extract(raw_from_folder(tmp_path, tmp_path / "src"), tmp_path / "extracted", 100)
    m = ingest(tmp_path / "extracted", tmp_path / "interim", SPLIT, seed=0)
    assert sorted(m.split.unique()) == ["test", "train", "valid"]
    assert m.set_index("id").loc["val/disc/val.png", "split"] == "valid"


def test_ingest_with_no_image_is_a_clear_error(tmp_path):
    (tmp_path / "src/a").mkdir(parents=True)
    (tmp_path / "src/a/notes.txt").write_text("hi")
    extract(raw_from_folder(tmp_path, tmp_path / "src"), tmp_path / "extracted", 100)
    with pytest.raises(SpecimenError, match="no readable image"):
        ingest(tmp_path / "extracted", tmp_path / "interim", SPLIT, seed=0)


# -- preprocess ----------------------------------------------------------------------------------


def test_load_image_converts_modes_and_pads_proportionally(tmp_path):
    base = shape_image("square", size=(60, 30))  # wide: 30 rows, 60 columns
    rgb = np.asarray(base)
    cases = {
        "cmyk.jpg": (base.convert("CMYK"), "JPEG"),
        "grey.png": (base.convert("L"), "PNG"),
        "rgba.png": (base.convert("RGBA"), "PNG"),
        "palette.png": (base.convert("P", palette=Image.ADAPTIVE, colors=32), "PNG"),
        "sixteen.png": (Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257), "PNG"),
    }
    for name, (im, fmt) in cases.items():
        img, box, reason = load_image(str(save(tmp_path / name, im, fmt)), 32, 32, "rgb")
        assert reason == "" and img.shape == (32, 32, 3) and img.dtype == np.uint8, name
        assert box == (8, 0, 24, 32), name  # 2:1 content centred, zero bands above and below
        assert img[:8].max() == 0 and img[24:].max() == 0, name
        expected = cv2.resize(rgb, (32, 16), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(img[8:24].astype(int).mean() - expected.mean()) < 12, name
    # EXIF orientation 6: stored rotated, shown upright (wide)
    exif = Image.Exif()
    exif[0x0112] = 6
    save(tmp_path / "rot.jpg", base.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)
    img, box, _ = load_image(str(tmp_path / "rot.jpg"), 32, 32, "rgb")
    assert box == (8, 0, 24, 32)
    grey, _, _ = load_image(str(tmp_path / "grey.png"), 20, 40, "grey")
    assert grey.shape == (20, 40, 1)


def test_load_image_rejects_truncated_bytes(tmp_path):
    data = io.BytesIO()
    shape_image("disc", size=(200, 200)).save(data, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    img, box, reason = load_image(str(tmp_path / "cut.jpg"), 32, 32, "rgb")
    assert img is None and reason.startswith("cannot decode")


def prepared(tmp_path, per_class=10):
    folder = class_folder_dataset(tmp_path / "shapes", per_class=per_class)
    extract(raw_from_folder(tmp_path, folder), tmp_path / "extracted", 100)
    ingest(tmp_path / "extracted", tmp_path / "interim", SPLIT, seed=0)
    return tmp_path / "interim/manifest.csv", tmp_path / "extracted"


def test_preprocess_shards_are_the_same_whatever_the_worker_count(tmp_path, monkeypatch):
    manifest, extracted = prepared(tmp_path)
    image = {"size": [24, 24], "resize": "pad", "color": "rgb"}
    outs = []
    for n in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", n)
        out = tmp_path / f"processed{n}"
        kept = preprocess(manifest, extracted, out, image, shard_size=7)
        outs.append(out)
    assert kept == 20 and sorted(p.name for p in (outs[0] / "shards").iterdir()) == [
        "shard-00000.npy",
        "shard-00001.npy",
        "shard-00002.npy",
    ]
    for a in sorted(outs[0].rglob("*")):
        if a.is_file():
            assert a.read_bytes() == (outs[1] / a.relative_to(outs[0])).read_bytes(), a.name
    assert np.load(outs[0] / "shards/shard-00002.npy").shape == (6, 24, 24, 3)
    assert not list(tmp_path.glob(".processed*"))  # no temporary folder left behind


# -- embed, clean, balance -----------------------------------------------------------------------


def test_histogram_is_the_classic_opencv_recipe_over_the_image_pixels_only(tmp_path):
    manifest, extracted = prepared(tmp_path, per_class=4)
    preprocess(manifest, extracted, tmp_path / "processed", {"size": [24, 24], "resize": "pad", "color": "rgb"}, 50)
    assert embed(tmp_path / "processed", tmp_path / "features/histogram.npz", "histogram") == (8, 512)
    feats = np.load(tmp_path / "features/histogram.npz")["features"]
    index = pd.read_csv(tmp_path / "processed/index.csv")
    row = index.iloc[0]
    img = np.load(tmp_path / "processed/shards" / row.shard)[row.offset]
    content = np.ascontiguousarray(img[row.y0 : row.y1, row.x0 : row.x1])
    hist = cv2.calcHist([content], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    cv2.normalize(hist, hist)
    np.testing.assert_allclose(feats[0], hist.flatten(), rtol=1e-5)
    assert row.y0 > 0 and feats[0][0] < hist.flatten().max()  # padding (black) not counted
    with np.load(tmp_path / "features/histogram.npz") as npz:
        assert npz["ids"].tolist() == index.id.tolist() and npz["features"].shape == (8, 512)
    assert colour_histogram(np.zeros((4, 4, 1), np.uint8)).shape == (512,)


def test_balance_weights_are_sklearn_balanced(tmp_path):
    pd.DataFrame({"id": range(8), "label": ["a"] * 6 + ["b"] * 2, "split": ["train"] * 8}).to_csv(
        tmp_path / "i.csv", index=False
    )
    r = balance(tmp_path / "i.csv", tmp_path / "out", {"class_weight": "balanced"})
    assert r["weights"] == {"a": pytest.approx(8 / (2 * 6)), "b": pytest.approx(8 / (2 * 2))}
    assert balance(tmp_path / "i.csv", tmp_path / "out", {"class_weight": "none"})["weights"] == {"a": 1.0, "b": 1.0}
    train = pd.read_csv(tmp_path / "out/train.csv", keep_default_na=False, dtype=str)
    assert len(train) == 8 and (train["transform"] == "").all() and (train.source_id == train.id).all()


def test_oversampling_adds_transformed_copies_of_minority_training_images_only(tmp_path):
    rows = [{"id": f"a{i}", "label": "a", "split": "train"} for i in range(7)]
    rows += [{"id": f"b{i}", "label": "b", "split": "train"} for i in range(3)]
    rows += [{"id": "v0", "label": "b", "split": "valid"}, {"id": "t0", "label": "b", "split": "test"}]
    pd.DataFrame(rows).to_csv(tmp_path / "i.csv", index=False)
    params = {"class_weight": "balanced", "oversample": {"target": "max", "transforms": ["flip_h", "rot180"]}}
    r = balance(tmp_path / "i.csv", tmp_path / "out", params, image_size=[8, 8])
    train = pd.read_csv(tmp_path / "out/train.csv", keep_default_na=False)
    assert r["counts"] == {"a": 7, "b": 7} and r["counts_before_oversampling"] == {"a": 7, "b": 3}
    assert r["weights"] == {"a": 1.0, "b": 1.0}  # weights follow the balanced index: no double correction
    copies = train[train["transform"] != ""]
    assert copies.source_id.tolist() == ["b0", "b1", "b2", "b0"]  # every image once before any twice
    assert copies["transform"].tolist() == ["flip_h", "flip_h", "flip_h", "rot180"]
    assert set(train.split) == {"train"} and copies.id.is_unique
    first = (tmp_path / "out/train.csv").read_bytes()
    balance(tmp_path / "i.csv", tmp_path / "out", params, image_size=[8, 8])
    assert (tmp_path / "out/train.csv").read_bytes() == first
    with pytest.raises(SpecimenError, match="need square images"):
        balance(
            tmp_path / "i.csv",
            tmp_path / "out",
            {**params, "oversample": {"target": 10, "transforms": ["rot90"]}},
            image_size=[8, 16],
        )


def test_transforms_are_exact():
    from specimen.clean.balance import apply_transform

    a = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    assert apply_transform(a, "flip_h")[:, :, 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert apply_transform(a, "rot180")[:, :, 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    sq = np.arange(4).reshape(2, 2, 1)
    assert apply_transform(apply_transform(sq, "rot90"), "rot270").tolist() == sq.tolist()


@pytest.mark.parametrize("mode, box", [("pad", (8, 0, 24, 32)), ("crop", (0, 0, 32, 32)), ("stretch", (0, 0, 32, 32))])
def test_resize_modes(tmp_path, mode, box):
    wide = np.zeros((30, 60, 3), np.uint8)
    wide[:, :20] = 255  # a white band on the left third
    path = save(tmp_path / "wide.png", Image.fromarray(wide))
    img, got_box, _ = load_image(str(path), 32, 32, "rgb", mode)
    assert img.shape == (32, 32, 3) and got_box == box
    assert img[12:20, :4].mean() > 200  # the band's left edge survives every mode
    if mode == "crop":  # scaled to 32x64, columns 16..48 kept: 5 px of the 21 px band remain
        assert img[12:20, 7:].max() < 60
    else:  # pad and stretch keep the whole band: the left third (0..10.7 px)
        assert img[12:20, 7:10].mean() > 200 and img[12:20, 14:].max() < 60


def test_large_jpegs_decode_at_reduced_scale_with_exif_rotation(tmp_path):
    big = np.full((1200, 800, 3), 230, np.uint8)
    cv2.rectangle(big, (100, 100), (300, 1100), (10, 10, 10), -1)  # a tall dark bar, left
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(big).transpose(Image.Transpose.ROTATE_90)  # stored sideways
    path = save(tmp_path / "big.jpg", stored, "JPEG", exif=exif, quality=90)
    with Image.open(path) as im:
        im.draft(im.mode, (64, 96))
        assert im.size[0] < 1200 / 4  # libjpeg scaled it down when decoding
    img, box, _ = load_image(str(path), 48, 32, "rgb", "pad")
    assert img.shape == (48, 32, 3) and box == (0, 0, 48, 32)  # upright 3:2 portrait fills 48x32
    assert img[10:38, 5:9].mean() < 60 and img[10:38, 24:30].mean() > 180  # bar on the left, upright


def test_max_pixels_refuses_bombs_without_decoding(tmp_path):
    path = save(tmp_path / "huge.png", Image.new("RGB", (400, 300)))
    img, _, reason = load_image(str(path), 32, 32, "rgb", "pad", max_pixels=100_000)
    assert img is None and reason == "decompression bomb: 120000 pixels > image.max_pixels"


def test_every_shard_image_is_its_source_decoded_even_around_rejects(tmp_path):
    manifest, extracted = prepared(tmp_path, per_class=6)
    archive = tmp_path / "raw/shapes.zip"  # where extract's listing reads the images from
    with zipfile.ZipFile(archive) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    victim = sorted(n for n in members if n.endswith(".png"))[3]
    members[victim] = members[victim][:200]  # truncated after ingest: preprocess rejects it
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    kept = preprocess(
        manifest, extracted, tmp_path / "processed", {"size": [16, 20], "resize": "pad", "color": "rgb"}, 5
    )
    index = pd.read_csv(tmp_path / "processed/index.csv")
    rejects = pd.read_csv(tmp_path / "processed/rejects.csv")
    assert kept == len(index) == 11 and rejects.stage.tolist() == ["preprocess"]
    m = pd.read_csv(manifest).set_index("id")
    for row in index.itertuples():
        stored = np.load(tmp_path / "processed/shards" / row.shard)[row.offset]
        expected, _, _ = load_image(Extracted(extracted).read(m.loc[row.id, "path"]), 16, 20, "rgb")
        assert (stored == expected).all(), row.id


def test_preprocess_honours_a_max_pixels_above_pillows_own_limit(tmp_path, monkeypatch):
    manifest, extracted = prepared(tmp_path, per_class=2)  # 40x30 = 1200-pixel images
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow alone would refuse them (> 2 x 500)
    kept = preprocess(
        manifest,
        extracted,
        tmp_path / "processed",
        {"size": [16, 16], "resize": "pad", "color": "rgb", "max_pixels": 10_000},
        8,
    )
    assert kept == 4


def test_a_streamed_array_gives_the_bytes_numpy_writes_for_the_whole_array(tmp_path):
    """embed writes its features a batch at a time (Streamed): the npz must read back as numpy's
    own, hold the same bytes as the whole array written at once, and refuse a wrong row count."""
    from specimen.artefacts import Streamed, write_npz

    rng = np.random.default_rng(0)
    whole = rng.normal(size=(70, 5)).astype(np.float32)
    ids = np.array([f"img{i}" for i in range(70)])
    blocks = (whole[s : s + 16] for s in range(0, 70, 16))
    write_npz(tmp_path / "streamed.npz", ids=ids, features=Streamed(whole.shape, np.float32, blocks))
    write_npz(tmp_path / "whole.npz", ids=ids, features=whole)
    np.savez(tmp_path / "numpy.npz", ids=ids, features=whole)
    with np.load(tmp_path / "streamed.npz") as ours, np.load(tmp_path / "numpy.npz") as theirs:
        np.testing.assert_array_equal(ours["features"], theirs["features"])
        assert ours["ids"].tolist() == theirs["ids"].tolist()
    assert (tmp_path / "streamed.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()
    short = Streamed((71, 5), np.float32, iter([whole]))
    with pytest.raises(ValueError, match="70 rows written for an array of 71"):
        write_npz(tmp_path / "short.npz", features=short)
    assert not (tmp_path / "short.npz").exists()  # nothing half-written
