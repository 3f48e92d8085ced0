"""A bad-input corpus, generated here (no committed binaries), through the real chain: each stage
called as `specimen STAGE ...` (cli.main, in this process) from a local folder or archive through
download, extract, ingest and preprocess, and for the dataset shapes on through embed (histogram),
clean and balance.

Each case ends in one line on stderr that says what to do (exit status 2, no traceback, the
stage's output absent), or in a row with its reason: in the manifest, rejects.csv or removed.csv.
And every source file is accounted for: a manifest row per extracted file (and per listed path
with no file), processed index + rejects = manifest, clean index + removed = processed index,
balance's rows = the clean train split.

Not repeated here: each hostile archive against extract() itself (tests/test_extract_hostile.py),
layouts and the Kaggle CSV's faults against ingest() itself (tests/test_ingest_layouts.py),
decoding against load_image (tests/test_stages.py), each reason of clean (tests/test_clean.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import stat
import struct
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from specimen.cli import main
from specimen.data.extracted import Extracted
from specimen.data.ingest import ALONE
from tests.conftest import ROOT, set_dotted
from tests.test_clean import page
from tests.test_extract_hostile import tar_bytes, tar_info, zip_bytes, zip_info

# -- running the chain ---------------------------------------------------------------------------

STAGES = {  # stage: its arguments below data/, as the Snakefile and dvc.yaml give them
    "download": ["raw"],
    "extract": ["raw", "extracted"],
    "ingest": ["extracted", "interim"],
    "preprocess": ["interim/manifest.csv", "extracted", "processed"],
    "embed": ["processed", "features/histogram.npz"],
    "clean": ["processed", "features/histogram.npz", "clean"],
    "balance": ["clean/index.csv", "clean"],
}
OUTPUT = {
    "download": "raw",
    "extract": "extracted",
    "ingest": "interim/manifest.csv",
    "preprocess": "processed",
    "embed": "features/histogram.npz",
    "clean": "clean/index.csv",
    "balance": "clean/train.csv",
}
FAST = {"image.size": [16, 16], "preprocess.shard_size": 16}
PROGRESS = re.compile(r"^[\w ]+(: [\w ]+)?: *\d+%\|")  # a tqdm bar, e.g. "clean: image properties:  50%|#####"


def write_params(tmp: Path, source: str, changes: dict) -> Path:
    params = set_dotted(
        yaml.safe_load((ROOT / "params.yaml").read_text()), {"dataset.source": source, **FAST, **changes}
    )
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    return path


def specimen(params: Path, stage: str, data: Path) -> tuple[int, str, str]:
    """`specimen STAGE --params PARAMS ARGS...` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([stage, "--params", str(params), *(str(data / a) for a in STAGES[stage])])
    return status, out.getvalue(), err.getvalue()


@dataclass
class Run:
    data: Path
    failed: str | None  # the stage that refused, or None
    out: dict  # stage: its stdout
    err: str  # the failed stage's stderr

    def read(self, rel: str) -> pd.DataFrame:
        return pd.read_csv(self.data / rel, dtype=str, keep_default_na=False)


def chain(tmp: Path, source: str, last: str = "balance", **changes) -> Run:
    """Run the stages from download to `last`, stopping at the first that fails."""
    params, data = write_params(tmp, source, changes), tmp / "data"
    names = list(STAGES)
    outs = {}
    for name in names[: names.index(last) + 1]:
        status, out, err = specimen(params, name, data)
        outs[name] = out
        if status != 0:
            assert status == 2, f"specimen {name} exited {status}:\n{err}"
            return Run(data, name, outs, err)
        accounted(Run(data, None, outs, ""), name)
    return Run(data, None, outs, "")


def error_line(run: Run, stage: str) -> str:
    """The refusal: the one line on stderr (tqdm's bars aside), from `stage`, with nothing written."""
    assert run.failed == stage, f"expected specimen {stage} to refuse; {run.failed or 'nothing'} did:\n{run.err}"
    assert "Traceback" not in run.err
    lines = [s for s in re.split(r"[\r\n]+", run.err) if s.strip() and not PROGRESS.match(s)]
    assert len(lines) == 1, run.err
    assert lines[0].startswith(f"specimen {stage}: error: "), lines[0]
    assert not (run.data / OUTPUT[stage]).exists()  # nothing half-written
    return lines[0]


def files_listed(extracted: Path) -> list[str]:
    """The files extract listed (their bytes stay in the archive, read in place)."""
    return sorted(Extracted(extracted).paths)


def accounted(run: Run, stage: str) -> None:
    """Every file that reached `stage` is in its output: kept, or rejected/removed with a reason."""
    if stage == "extract":  # the files it reports are the files listed (junk it skipped: counted, not listed)
        written = int(re.search(r"(\d+) files listed in", run.out["extract"]).group(1))
        assert len(files_listed(run.data / "extracted")) == written
    elif stage == "ingest":
        m = run.read("interim/manifest.csv")
        assert m.id.is_unique and set(m.status) <= {"ok", "rejected", "labels"}
        assert sorted(m.path[m.path != ""]) == files_listed(run.data / "extracted")  # a row per file ...
        assert (m.status[m.path == ""] == "rejected").all()  # ... and per listed path with none
        assert (m.reason[m.status != "ok"] != "").all()
    elif stage == "preprocess":
        m, index, rejects = (
            run.read("interim/manifest.csv"),
            run.read("processed/index.csv"),
            run.read("processed/rejects.csv"),
        )
        assert sorted([*index.id, *rejects.id]) == sorted(m.id) and (rejects.reason != "").all()
        assert set(rejects.stage) <= {"ingest", "preprocess"}
    elif stage == "clean":
        index, kept, removed = (
            run.read("processed/index.csv"),
            run.read("clean/index.csv"),
            run.read("clean/removed.csv"),
        )
        assert sorted([*kept.id, *removed.id]) == sorted(index.id) and (removed.reason != "").all()
        assert (kept.label == index.set_index("id").label[kept.id].to_numpy()).all()  # labels kept as text
    elif stage == "balance":
        kept, train = run.read("clean/index.csv"), run.read("clean/train.csv")
        assert set(train.source_id) == set(kept.id[kept.split == "train"])
        weights = json.loads((run.data / "clean/class_weights.json").read_text())["weights"]
        assert set(weights) == set(train.label)


# -- building the corpus -------------------------------------------------------------------------

INKS = [(40, 40, 50), (120, 30, 30), (30, 110, 40), (30, 40, 140), (130, 110, 20), (110, 30, 120)]


def picture(path: Path, seed: int, ink: int = 0) -> Path:
    """A distinct small image (an off-white page with two letters), PNG or JPEG from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(page(np.random.default_rng(seed), ink=INKS[ink % len(INKS)])).save(path, format=fmt)
    return path


def class_folders(root: Path, counts: dict, prefix: str = "", seed: int = 0) -> Path:
    """`prefix<class>/<i>.png` for each class and count."""
    for c, (label, n) in enumerate(counts.items()):
        for i in range(n):
            picture(root / f"{prefix}{label}/{i}.png", seed * 1000 + c * 100 + i, c)
    return root


def split_folders(root: Path, per_split: dict, classes=("cat", "dog")) -> Path:
    for s, (split, n) in enumerate(per_split.items()):
        class_folders(root, {c: n for c in classes}, f"{split}/", seed=s + 1)
    return root


def labels_dataset(root: Path, rows: list, columns=("filename", "label"), images: int = 12, name="labels.csv") -> Path:
    """images/<i>.png, and a labels file listing `rows` (written as CSV or JSON lines by its suffix)."""
    for i in range(images):
        picture(root / f"images/{i}.png", 7000 + i, i % 2)
    table = pd.DataFrame(rows, columns=list(columns))
    if name.endswith(".csv"):
        table.to_csv(root / name, index=False)
    else:
        table.to_json(root / name, orient="records", lines=True, force_ascii=False)
    return root


def png_header(width: int, height: int) -> bytes:
    """A valid little PNG whose header claims width x height pixels: a decompression bomb's header."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# -- archives: `specimen extract` refuses in one line ----------------------------------------------

UNSAFE = "repack it without this entry, or get it from a trusted source"


def _damaged(data: bytes) -> bytes:
    """A one-entry zip with its compressed bytes scrambled (headers intact)."""
    start = data.index(b"cls/a.png") + len(b"cls/a.png")  # the local header's name, then the data
    return data[:start] + bytes(b ^ 0x5A for b in data[start : start + 40]) + data[start + 40 :]


def _encrypted(data: bytes) -> bytes:
    """A one-entry zip whose headers say it is encrypted (general purpose flag bit 0)."""
    b = bytearray(data)
    local, central = b.index(b"PK\x03\x04"), b.index(b"PK\x01\x02")
    b[local + 6] |= 1
    b[central + 8] |= 1
    return bytes(b)


ARCHIVES = {  # id: (archive name, its bytes, params, what the line says)
    "path_escape": (
        "evil.zip",
        lambda: zip_bytes([("ok/a.png", b"a"), ("../../escape.png", b"x")]),
        {},
        ["'../../escape.png'", "outside the target folder", UNSAFE],
    ),
    "absolute_path_in_tar": (
        "evil.tar",
        lambda: tar_bytes([("/etc/escape.png", b"x")]),
        {},
        ["'/etc/escape.png'", "absolute path", UNSAFE],
    ),
    "symlink_in_zip": (
        "evil.zip",
        lambda: zip_bytes([(zip_info("cls/link.png", stat.S_IFLNK | 0o777), b"/etc/passwd")]),
        {},
        ["'cls/link.png'", "symbolic links are not allowed", UNSAFE],
    ),
    "hardlink_in_tar": (
        "evil.tar.gz",
        lambda: tar_bytes([("cls/a.png", b"a"), (tar_info("cls/b.png", tarfile.LNKTYPE, "cls/a.png"), None)], "w:gz"),
        {},
        ["'cls/b.png'", "links are not allowed", UNSAFE],
    ),
    "zip_bomb": (
        "bomb.zip",
        lambda: zip_bytes([("cls/zeros.png", bytes(3_000_000))]),
        {},
        ["'cls/zeros.png'", "extract.max_ratio (200)", "raise extract.max_ratio in params.yaml if you trust"],
    ),
    "too_big": (
        "big.tar",
        lambda: tar_bytes([("cls/a.png", bytes(1_500_000))]),
        {"extract.max_total_mb": 1},
        ["'cls/a.png'", "extract.max_total_mb (1 MB)", "raise extract.max_total_mb"],
    ),
    "too_many_files": (
        "many.zip",
        lambda: zip_bytes([(f"cls/{i}.png", b"x") for i in range(4)]),
        {"extract.max_files": 3},
        ["'cls/3.png'", "extract.max_files (3)", "raise extract.max_files"],
    ),
    "hostile_nested_archive": (
        "outer.zip",
        lambda: zip_bytes([("inner.tar", tar_bytes([("../x.png", b"x")]))]),
        {},
        ["outer.zip > inner.tar", "'../x.png'", UNSAFE],
    ),
    "not_an_archive": (
        "photos.zip",
        lambda: b"<html>404 not found</html>",
        {},
        ["photos.zip: neither a zip nor a tar archive", "check dataset.source"],
    ),
    "truncated_zip": (
        "cut.zip",
        lambda: zip_bytes([("cls/a.png", b"a" * 5000)])[:-30],
        {},
        ["cut.zip: not a readable zip archive", "download the archive again if it is damaged"],
    ),
    "damaged_entry": (
        "bad.zip",
        lambda: _damaged(zip_bytes([("cls/a.png", bytes(range(256)) * 40)])),
        {},
        ["bad.zip: cannot read entry 'cls/a.png'", "download it again"],
    ),
    "encrypted_entry": (
        "locked.zip",
        lambda: _encrypted(zip_bytes([("cls/a.png", b"a" * 100)])),
        {},
        ["locked.zip: cannot read entry 'cls/a.png'", "password required", "repack it without a password"],
    ),
    "empty_zip": (
        "empty.zip",
        lambda: zip_bytes([]),
        {},
        ["empty.zip: the archive holds no files", "check dataset.source"],
    ),
    "empty_tar": (
        "empty.tar",
        lambda: tar_bytes([]),
        {},
        ["empty.tar: the archive holds no files", "check dataset.source"],
    ),
    "folders_only": (
        "dirs.zip",
        lambda: zip_bytes([("cls/", b""), ("cls/sub/", b"")]),
        {},
        ["dirs.zip: the archive holds no files", "check dataset.source"],
    ),
    "macos_junk_only": (
        "mac.zip",
        lambda: zip_bytes([("__MACOSX/._a.png", b"fork"), (".DS_Store", b"ds")]),
        {},
        ["mac.zip: the archive holds no files (2 macOS/dotfile entries skipped)", "check dataset.source"],
    ),
    "empty_inner_archive": (
        "outer.zip",
        lambda: zip_bytes([("data.zip", zip_bytes([]))]),
        {},
        ["outer.zip > data.zip: the archive holds no files", "check dataset.source"],
    ),
}


@pytest.mark.parametrize("case", ARCHIVES)
def test_an_archive_that_cannot_be_used_is_one_line_from_extract(tmp_path, case):
    name, data, changes, words = ARCHIVES[case]
    archive = tmp_path / "source" / name
    archive.parent.mkdir()
    archive.write_bytes(data())
    run = chain(tmp_path, f"local:{archive}", **changes)
    line = error_line(run, "extract")
    for w in words:
        assert w in line, line
    assert not (tmp_path / "escape.png").exists() and not list(tmp_path.rglob("*escape*"))


# -- image faults: kept and decoded right, or rejected with a reason -------------------------------

WIDE = np.zeros((20, 40, 3), np.uint8)
WIDE[:, :20] = (200, 50, 50)  # red on the left half, black on the right: shows a rotation or a mirror


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _truncated_jpeg(seed: int) -> bytes:
    """A JPEG cut in its pixel data: its header reads (ingest keeps it), its pixels do not."""
    data = _jpeg(Image.fromarray(page(np.random.default_rng(seed), size=(200, 200))))
    assert data.index(b"\xff\xda") < len(data) // 2  # the scan starts before the cut
    return data[: len(data) * 2 // 3]


def _palette_with_transparency() -> bytes:
    im = Image.new("P", (40, 20), 0)
    im.putpalette([255, 255, 255, 200, 50, 50])  # index 0: white but fully transparent; 1: red
    im.paste(1, (0, 0, 20, 20))
    return _png(im, transparency=0)


def _animated_gif() -> bytes:
    first, second = Image.fromarray(WIDE), Image.new("RGB", (40, 20), (255, 255, 0))
    buf = io.BytesIO()
    first.save(buf, format="GIF", save_all=True, append_images=[second])
    return buf.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: stored as the upright image turned back
    return _jpeg(Image.fromarray(WIDE).transpose(Image.Transpose.ROTATE_90), exif=exif, quality=95)


def _left_red_right_black(pixels, box):
    """The WIDE picture, upright and unmirrored: 2:1, padded above and below, red left, black right."""
    left, right = pixels[4:12, 1:7].reshape(-1, 3).mean(0), pixels[4:12, 9:15].reshape(-1, 3).mean(0)
    return box == (4, 0, 12, 16) and np.abs(left - (200, 50, 50)).max() < 20 and right.max() < 20


FAULTS = {  # id: (file in class a/ or b/, its bytes, ("kept", check) or (stage, reason pattern))
    "truncated_jpeg": (
        "a/truncated.jpg",
        lambda: _truncated_jpeg(1),
        ("preprocess", r"^cannot decode: image file is truncated"),
    ),
    "truncated_png": (
        "a/truncated.png",
        lambda: _png(Image.fromarray(page(np.random.default_rng(2))))[:-40],
        ("ingest", r"^corrupt image: "),
    ),
    "zero_bytes": ("a/zero.jpg", lambda: b"", ("ingest", r"^empty file$")),
    "text_named_jpg": (
        "a/text.jpg",
        lambda: b"this is not a photo\n",
        ("ingest", r"^corrupt image: cannot identify image file 'text.jpg'"),
    ),
    "text_file": ("b/notes.txt", lambda: b"shot on a sunny day\n", ("ingest", r"^not an image$")),
    "windows_thumbs_db": ("b/Thumbs.db", lambda: b"\xd0\xcf\x11\xe0" + bytes(60), ("ingest", r"^not an image$")),
    "decompression_bomb": (
        "b/bomb.png",
        lambda: png_header(100_000, 100_000),
        ("ingest", r"^decompression bomb: 10000000000 pixels > image\.max_pixels$"),
    ),
    "png_named_jpg": ("a/png.jpg", lambda: _png(Image.fromarray(WIDE)), ("kept", _left_red_right_black)),
    "cmyk_jpeg": (
        "a/cmyk.jpg",
        lambda: _jpeg(Image.fromarray(WIDE).convert("CMYK"), quality=95),
        ("kept", _left_red_right_black),
    ),
    "grey_16_bit_png": (
        "a/sixteen.png",
        lambda: _png(Image.fromarray(np.full((20, 40), 100 * 257, np.uint16))),
        ("kept", lambda px, box: box == (4, 0, 12, 16) and np.abs(px[4:12].astype(int) - 100).max() <= 1),
    ),
    "palette_with_transparency": ("b/palette.png", _palette_with_transparency, ("kept", _left_red_right_black)),
    "animated_gif": ("b/anim.gif", _animated_gif, ("kept", _left_red_right_black)),  # the first frame
    "exif_rotated": ("b/rotated.jpg", _exif_rotated, ("kept", _left_red_right_black)),
    "one_pixel": (
        "b/dot.png",
        lambda: _png(Image.new("RGB", (1, 1), (9, 99, 9))),
        ("kept", lambda px, box: box == (0, 0, 16, 16) and (px == (9, 99, 9)).all()),
    ),
    "extreme_aspect_ratio": (
        "b/strip.png",
        lambda: _png(Image.new("RGB", (2000, 1), (9, 99, 9))),
        ("kept", lambda px, box: box == (7, 0, 8, 16) and (px[7] == (9, 99, 9)).all() and px[:7].max() == 0),
    ),
}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    """Two classes of 6 good images, the faults among them and a .DS_Store, from download to preprocess."""
    tmp = tmp_path_factory.mktemp("faults")
    root = class_folders(tmp / "source/photos", {"a": 6, "b": 6})
    for rel, data, _ in FAULTS.values():
        (root / rel).write_bytes(data())
    (root / "a/.DS_Store").write_bytes(b"\0\0\0\1Bud1")
    run = chain(tmp, f"local:{root}", last="preprocess")
    assert run.failed is None, run.err
    return run


def test_the_image_fault_corpus_accounts_for_every_file(faults):
    assert "(1 macOS/dotfile entries skipped)" in faults.out["extract"]  # .DS_Store: skipped, and counted
    m = faults.read("interim/manifest.csv")
    assert len(m) == 12 + len(FAULTS) and (m.path != "").all()  # every other source file is a row
    index, rejects = faults.read("processed/index.csv"), faults.read("processed/rejects.csv")
    assert len(index) + len(rejects) == len(m)
    assert sorted(rejects.id) == sorted(rel for rel, _, (how, _) in FAULTS.values() if how != "kept")


@pytest.mark.parametrize("case", FAULTS)
def test_an_image_fault_is_kept_and_decoded_right_or_rejected_with_its_reason(faults, case):
    rel, _, (how, expect) = FAULTS[case]
    index = faults.read("processed/index.csv").set_index("id")
    rejects = faults.read("processed/rejects.csv").set_index("id")
    if how == "kept":
        row = index.loc[rel]
        pixels = np.load(faults.data / "processed/shards" / row.shard)[int(row.offset)]
        box = tuple(int(row[k]) for k in ("y0", "x0", "y1", "x1"))
        assert bool(expect(pixels, box)) is True, (box, pixels[..., 0])  # numpy's False_ is not False
        assert rel not in rejects.index
    else:
        assert rel not in index.index
        assert rejects.stage[rel] == how and re.search(expect, rejects.reason[rel]), rejects.loc[rel].to_dict()


# -- labels files: rows with a reason, and files that cannot be used -------------------------------

ROWS = [(f"{i}.png", ("cat", "dog")[i % 2]) for i in range(10)] + [  # bare names, found below images/
    ("images/0.png", "cat"),  # the same file again, same label
    ("./images/1.png", "cat"),  # the same file again, another label
    ("images/404.png", "cat"),  # no such file
    ("10.png", " "),  # no label
    ("", "dog"),  # no path
    ("x.png", "cat"),  # a bare name that two files have: a/x.png and b/x.png
    ("../outside.png", "dog"),  # leaves the dataset root
]
LISTED = {  # id: (manifest status, reason); every other file below images/ is ok with no reason
    "listed_twice_with_the_same_label": ("images/0.png", "ok", "listed twice in labels.csv"),
    "listed_twice_with_different_labels": ("images/1.png", "rejected", "listed twice with different labels"),
    "listed_but_missing": ("images/404.png", "rejected", "listed in labels.csv but missing"),
    "listed_with_no_label": ("images/10.png", "rejected", "no label in labels.csv"),
    "listed_with_no_path": (
        f"labels.csv row {ROWS.index(('', 'dog')) + 1}",
        "rejected",
        "listed in labels.csv with an empty path",
    ),
    "listed_by_a_name_two_files_have": (
        "x.png",
        "rejected",
        "listed in labels.csv but matches 2 files (a/x.png, b/x.png)",
    ),
    "one_of_those_two_files": ("a/x.png", "rejected", "not listed in labels.csv"),
    "listed_outside_the_root": (
        "../outside.png",
        "rejected",
        "listed in labels.csv with a path that leaves the dataset root",
    ),
    "not_listed": ("images/11.png", "rejected", "not listed in labels.csv"),
    "the_labels_file_itself": ("labels.csv", "labels", "labels file"),
}


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    """images/0..11.png, a/x.png, b/x.png and a labels.csv with a fault in each of its last rows."""
    tmp = tmp_path_factory.mktemp("listed")
    root = labels_dataset(tmp / "source/pets", ROWS)
    picture(root / "a/x.png", 1)
    picture(root / "b/x.png", 2)
    run = chain(tmp, f"local:{root}", last="preprocess")
    assert run.failed is None, run.err
    return run


def test_a_labels_file_with_faulty_rows_accounts_for_every_file_and_row(listed):
    m = listed.read("interim/manifest.csv")
    assert len(m) == 15 + 4  # 12 images, a/x.png, b/x.png, labels.csv; and 4 listed paths that name no one file
    assert sorted(m.id[m.path == ""]) == ["../outside.png", "images/404.png", LISTED["listed_with_no_path"][0], "x.png"]
    ok = m[m.status == "ok"]
    assert sorted(ok.id) == [f"images/{i}.png" for i in (0, 2, 3, 4, 5, 6, 7, 8, 9)]
    assert set(ok.split) == {"train", "valid", "test"}
    assert json.loads((listed.data / "interim/classes.json").read_text()) == {"classes": ["cat", "dog"]}


@pytest.mark.parametrize("case", LISTED)
def test_a_labels_file_fault_is_a_row_with_its_reason(listed, case):
    image_id, status, reason = LISTED[case]
    row = listed.read("interim/manifest.csv").set_index("id").loc[image_id]
    assert (row.status, row.reason) == (status, reason)
    index, rejects = (
        listed.read("processed/index.csv").set_index("id"),
        listed.read("processed/rejects.csv").set_index("id"),
    )
    if status == "ok":
        assert image_id in index.index and image_id not in rejects.index
    else:
        assert (rejects.stage[image_id], rejects.reason[image_id]) == ("ingest", reason)


def _csv_text(root: Path, text: str, encoding="utf-8", name="labels.csv") -> Path:
    labels_dataset(root, [])
    (root / name).write_bytes(text.encode(encoding))
    return root


LABELS_REFUSED = {  # id: (build the dataset under a folder, params, what ingest's line says)
    "no_label_column": (
        lambda r: labels_dataset(r, [(f"{i}.png",) for i in range(12)], ("filename",)),
        {"dataset.labels_file": "labels.csv"},
        ["labels.csv: no label column (columns: filename): add one", "dataset.columns.label"],
    ),
    "no_label_column_found_by_itself": (
        lambda r: labels_dataset(r, [(f"{i}.png",) for i in range(12)], ("filename",)),
        {},
        ["all 12 images are of one class, 'images'", "labels file", "dataset.columns"],
    ),
    "label_column_not_guessable": (
        lambda r: labels_dataset(r, [(f"{i}.png", "x") for i in range(12)], ("filename", "notes")),
        {},
        ["cannot tell which column holds the labels (candidates: notes)", "set dataset.columns.label to one of them"],
    ),
    "no_path_column": (
        lambda r: labels_dataset(r, [(f"{i}.png", "cat") for i in range(12)], ("picture", "label")),
        {"dataset.labels_file": "labels.csv"},
        ["labels.csv: no path column (columns: picture, label)", "set dataset.columns.path"],
    ),
    "not_utf8": (
        lambda r: _csv_text(
            r,
            "filename,label\n" + "".join(f"{i}.png,{('Löwenzahn', 'Gänseblümchen')[i % 2]}\n" for i in range(12)),
            "latin-1",
        ),
        {},
        ["labels.csv: not UTF-8 text", "save it as UTF-8"],
    ),
    "unquoted_comma": (
        lambda r: _csv_text(r, "filename,label\n0.png,cat\n1.png,oak, quercus\n2.png,dog\n"),
        {},
        ["labels.csv: cannot read it as CSV", "line 3", "quote a value that holds a comma"],
    ),
    "broken_json_lines": (
        lambda r: _csv_text(
            r, '{"path": "images/0.png", "label": "cat"}\n{"path": "images/1.png", "label": \n', name="labels.jsonl"
        ),
        {},
        ["labels.jsonl: cannot read it as JSON lines", "one JSON object per line"],
    ),
    "header_only": (
        lambda r: labels_dataset(r, []),
        {},
        [
            "not one of its 13 files is listed in the labels file (not listed in labels.csv 12, labels file 1)",
            "list the images in it, or name the right one in dataset.labels_file",
        ],
    ),
    "every_row_one_label": (
        lambda r: labels_dataset(r, [(f"{i}.png", "cat") for i in range(12)]),
        {},
        ["all 12 images are of one class, 'cat'", "a classifier needs two at least"],
    ),
}


@pytest.mark.parametrize("case", LABELS_REFUSED)
def test_a_labels_file_that_cannot_be_used_is_one_line_from_ingest(tmp_path, case):
    build, changes, words = LABELS_REFUSED[case]
    root = build(tmp_path / "source/pets")
    line = error_line(chain(tmp_path, f"local:{root}", **changes), "ingest")
    for w in words:
        assert w in line, line


NFC, NFD = (unicodedata.normalize(form, "Löwenzahn") for form in ("NFC", "NFD"))
LABEL_TEXT = {  # id: (labels as written, classes as kept)
    "spaces_unicode_slashes": (
        [" Black Widow ", "Black Widow", NFC, NFD, "oak/quercus", 'say "cheese", please', "🕷 spider", "日本語"],
        ["Black Widow", NFC, "oak/quercus", 'say "cheese", please', "日本語", "🕷 spider"],
    ),
    "numbers_and_missing_value_words": (
        ["01", "007", "1e3", "NA", "True", "null"],
        ["007", "01", "1e3", "NA", "True", "null"],
    ),
}


@pytest.mark.parametrize("case", LABEL_TEXT)
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # class_counts.png draws CJK and emoji as boxes
def test_labels_keep_their_text_from_the_labels_file_to_balance(tmp_path, case):
    written, classes = LABEL_TEXT[case]
    assert NFC != NFD and sorted(classes) == classes
    rows = [(f"{i}.png", written[i % len(written)]) for i in range(3 * len(written))]
    root = labels_dataset(tmp_path / "source/things", rows, images=len(rows))
    run = chain(
        tmp_path,
        f"local:{root}",
        **{
            "clean.outliers.method": "none",
            "clean.duplicates.phash_bits": None,
            "clean.quality.low_information.action": "flag",
        },
    )
    assert run.failed is None, run.err
    assert json.loads((run.data / "interim/classes.json").read_text()) == {"classes": classes}
    for table in ("interim/manifest.csv", "processed/index.csv", "clean/index.csv", "clean/train.csv"):
        labels = run.read(table).label
        assert set(labels[labels != ""]) == set(classes), table
    assert sorted(json.loads((run.data / "clean/class_weights.json").read_text())["weights"]) == classes


# -- dataset shapes: empty, one class, no test split ----------------------------------------------


def _files(root: Path, files: dict) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _truncated_tests(root: Path) -> Path:
    split_folders(root, {"train": 4, "valid": 2})
    return _files(
        root,
        {f"test/{c}/{i}.jpg": _truncated_jpeg(10 * c_i + i) for c_i, c in enumerate(("cat", "dog")) for i in range(2)},
    )


def _leaking_tests(root: Path) -> Path:
    split_folders(root, {"train": 6, "valid": 2})
    for c in ("cat", "dog"):
        for i in range(2):
            (root / f"test/{c}/{i}.png").parent.mkdir(parents=True, exist_ok=True)
            (root / f"test/{c}/{i}.png").write_bytes((root / f"train/{c}/{i}.png").read_bytes())
    return root


NO_TEST = (
    "so evaluate would have nothing: give the dataset test images (a test/ folder, or test rows in its labels file)"
)
SHAPES = {  # id: (build the dataset under a folder, params, the stage that refuses, what its line says)
    "empty_folder": (
        lambda r: r.mkdir(parents=True),
        {},
        "extract",
        ["shapes.zip: the archive holds no files: check dataset.source"],
    ),
    "only_files_that_are_not_images": (
        lambda r: _files(r, {"a/notes.txt": b"x", "b/table.csv": b"a,b\n", "b/run.sh": b"ls"}),
        {},
        "ingest",
        [
            "no readable image in 3 files (not an image 3)",
            "none has an image suffix (.jpg, .png, ...): check that dataset.source",
        ],
    ),
    "only_broken_images": (
        lambda r: _files(r, {"a/empty.jpg": b"", "b/text.png": b"hello", "b/cut.png": b"\x89PNG\r\n"}),
        {},
        "ingest",
        ["no readable image in 3 files (", "check that dataset.source is the image dataset you meant"],
    ),
    "images_without_class_folders": (
        lambda r: [picture(r / f"{i}.png", i) for i in range(6)],
        {},
        "ingest",
        [
            "not one of its 6 files is in a class folder (not in a <class>/ folder 6)",
            "put each class's images in a folder of its own, two classes at least",
        ],
    ),
    "one_class_folder": (
        lambda r: class_folders(r, {"cat": 8}),
        {},
        "ingest",
        ["shapes/cat: not one of its 8 files is in a class folder", "two classes at least"],
    ),
    "one_class_in_split_folders": (
        lambda r: split_folders(r, {"train": 4, "valid": 2, "test": 2}, ("cat",)),
        {},
        "ingest",
        ["all 8 images are of one class, 'cat': a classifier needs two at least"],
    ),
    "one_image_per_class": (
        lambda r: class_folders(r, {"cat": 1, "dog": 1}),
        {},
        "preprocess",
        ["no image in the test split (kept images per split: train 2)", NO_TEST],
    ),
    "test_share_zero": (
        lambda r: class_folders(r, {"cat": 6, "dog": 6}),
        {"dataset.split": {"train": 0.8, "valid": 0.2, "test": 0.0}},
        "preprocess",
        ["no image in the test split (kept images per split: train 9, valid 3)", "dataset.split.test above 0"],
    ),
    "test_folder_without_images": (
        lambda r: _files(split_folders(r, {"train": 4, "valid": 2}), {"test/cat/README.txt": b"soon"}),
        {},
        "preprocess",
        ["no image in the test split (kept images per split: train 8, valid 4)", NO_TEST],
    ),
    "no_test_folder": (
        lambda r: split_folders(r, {"train": 4, "valid": 2}),
        {},
        "preprocess",
        ["no image in the test split (kept images per split: train 8, valid 4)", NO_TEST],
    ),
    "no_train_folder": (
        lambda r: split_folders(r, {"valid": 2, "test": 2}),
        {},
        "preprocess",
        [
            "no image in the train split (kept images per split: valid 4, test 4), so training would have "
            "nothing: give the dataset training images"
        ],
    ),
    "test_images_that_do_not_decode": (
        _truncated_tests,
        {},
        "preprocess",
        [
            "none of the test images could be decoded (test/cat/0.jpg: cannot decode: image file is truncated",
            "so evaluate would have nothing: replace them with readable images",
        ],
    ),
    "test_images_all_copies_of_training_images": (
        _leaking_tests,
        {"clean.outliers.method": "none"},
        "clean",
        [
            "clean would remove every test image (leak 4), leaving evaluate nothing",
            "replace the test images that copy training or validation images (leak)",
        ],
    ),
    "class_only_in_test": (
        lambda r: picture(split_folders(r, {"train": 4, "test": 2}) / "test/emu/0.png", 5, 3),
        {"clean.outliers.method": "none"},
        "balance",
        [
            "class 'emu' has no training image (it has 1 test): a model cannot learn it; "
            "add training images of it, or take it out of the dataset"
        ],
    ),
}


@pytest.mark.parametrize("case", SHAPES)
def test_a_dataset_shape_no_run_can_use_is_one_line_at_the_first_stage_that_knows(tmp_path, case):
    build, changes, stage, words = SHAPES[case]
    root = tmp_path / "source/shapes"
    build(root)
    run = chain(
        tmp_path,
        f"local:{root}",
        **{"clean.duplicates.phash_bits": None, "clean.quality.low_information.action": "flag", **changes},
    )
    line = error_line(run, stage)
    for w in words:
        assert w in line, line


def test_a_class_with_one_image_trains_and_the_others_stay_stratified(tmp_path):
    """Its image goes to train (a note says so), the split of the others stays stratified, clean's
    per-class kNN leaves it alone (too few to score), and balance weights or copies it up."""
    root = class_folders(tmp_path / "source/birds", {"cat": 8, "dog": 8, "emu": 1})
    run = chain(
        tmp_path,
        f"local:{root}",
        **{
            "clean.duplicates.phash_bits": None,
            "clean.outliers.scope": "class",
            "clean.quality.low_information.action": "flag",
            "balance.oversample.target": "max",
        },
    )
    assert run.failed is None, run.err
    m = run.read("interim/manifest.csv").set_index("id")
    assert (m.status["emu/0.png"], m.split["emu/0.png"], m.reason["emu/0.png"]) == ("ok", "train", ALONE)
    for label in ("cat", "dog"):
        assert set(m.split[m.label == label]) == {"train", "valid", "test"}, label
    kept = run.read("clean/index.csv").set_index("id")
    assert float(kept.outlier_score["emu/0.png"]) == 0.0
    weights = json.loads((run.data / "clean/class_weights.json").read_text())
    assert weights["counts_before_oversampling"]["emu"] == 1
    assert weights["counts"]["emu"] == max(weights["counts"].values()) and len(set(weights["weights"].values())) == 1
    train = run.read("clean/train.csv")
    assert set(train.source_id[train.label == "emu"]) == {"emu/0.png"}
