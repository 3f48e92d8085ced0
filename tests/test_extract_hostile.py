"""extract against crafted hostile archives (built here, no committed binaries).

After every refusal: a one-line SpecimenError naming the entry, no output folder, and not one file
or folder written anywhere under the test's temp folder.
"""

import io
import json
import os
import random
import re
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from specimen import SpecimenError
from specimen.data.entries import CHUNK, Budget, Source, copy_limited
from specimen.data.extract import extract
from specimen.data.extracted import Extracted

TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}


# -- building archives ---------------------------------------------------------------------------


def zip_bytes(entries, method=zipfile.ZIP_DEFLATED) -> bytes:
    """entries: [(name or ZipInfo, bytes)]; a name ending in '/' is a folder."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def zip_info(name, mode) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def tar_bytes(members, mode="w") -> bytes:
    """members: [(name, data)] regular files, [(TarInfo, None)] anything else."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members:
            if isinstance(name, tarfile.TarInfo):
                tf.addfile(name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_info(name, type_, linkname="") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type_, linkname
    return info


def raw_with(tmp_path: Path, archive: str, data: bytes) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / archive).write_bytes(data)
    (raw / "source.json").write_text(json.dumps({"archive": archive, "name": "ds"}))
    (tmp_path / "work").mkdir(exist_ok=True)
    return raw


def everything(root: Path) -> set:
    """Every file, folder and link under root (links not followed)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def tree(out: Path) -> dict:
    """{path below ds/: bytes} of every file extract listed in out/files.csv, read where it lies."""
    listing = Extracted(out)
    assert all(p.startswith("ds/") for p in listing.paths), listing.paths
    return {p.removeprefix("ds/"): listing.read(p) for p in listing.paths}


def refused(tmp_path: Path, raw: Path, *limits, entry: str, match: str = "") -> str:
    out = tmp_path / "work/extracted"
    before = everything(tmp_path)
    with pytest.raises(SpecimenError) as caught:
        extract(raw, out, *limits)
    message = str(caught.value)
    assert "\n" not in message and repr(entry) in message, message
    assert re.search(match, message), message
    assert not out.exists()
    assert everything(tmp_path) == before  # nothing written anywhere, not even a folder
    return message


def extracted(tmp_path: Path, raw: Path, *limits):
    out = tmp_path / "work/extracted"
    before = everything(tmp_path)
    result = extract(raw, out, *limits)
    assert result["listing"] == str(out / "files.csv")
    new = everything(tmp_path) - before
    assert all(p == "work/extracted" or p.startswith("work/extracted/") for p in new), new
    return result, tree(out)


# -- names, links, devices -----------------------------------------------------------------------

ESCAPES = [
    "../x",
    "a/../../x",
    "a/b/../../../../x",
    "..\\x",
    "a\\..\\..\\..\\x",
    "\\abs\\x",
    "C:\\x",
    "C:/x",
    "C:x",
    "__MACOSX/../../x",
    "{tmp}/abs-escape",
]


@pytest.mark.parametrize("name", ESCAPES)
@pytest.mark.parametrize("fmt", [".zip", ".tar"])
def test_names_escaping_the_target_are_refused(tmp_path, fmt, name):
    name = name.format(tmp=tmp_path)
    entries = [("ok/a.txt", b"fine"), (name, b"evil")]
    data = zip_bytes(entries) if fmt == ".zip" else tar_bytes(entries)
    raw = raw_with(tmp_path, f"evil{fmt}", data)
    refused(tmp_path, raw, 100, entry=name, match="outside the target folder")


@pytest.mark.parametrize(
    "mode, match",
    [(stat.S_IFLNK | 0o777, "symbolic links"), (stat.S_IFCHR | 0o600, "device files"), (stat.S_IFIFO | 0o600, "fifos")],
)
def test_zip_links_and_special_files_are_refused(tmp_path, mode, match):
    raw = raw_with(
        tmp_path, "evil.zip", zip_bytes([("ok/a.txt", b"fine"), (zip_info("ok/link", mode), b"/etc/passwd")])
    )
    refused(tmp_path, raw, 100, entry="ok/link", match=match)


@pytest.mark.parametrize(
    "type_, match",
    [
        (tarfile.SYMTYPE, "links"),
        (tarfile.LNKTYPE, "links"),
        (tarfile.CHRTYPE, "device files"),
        (tarfile.BLKTYPE, "device files"),
        (tarfile.FIFOTYPE, "fifos"),
    ],
)
def test_tar_links_devices_and_fifos_are_refused(tmp_path, type_, match):
    members = [("ok/a.txt", b"fine"), (tar_info("ok/special", type_, "ok/a.txt"), None)]
    raw = raw_with(tmp_path, "evil.tar.gz", tar_bytes(members, "w:gz"))
    refused(tmp_path, raw, 100, entry="ok/special", match=match)


def test_duplicates_and_files_in_the_way_are_refused(tmp_path):
    raw = raw_with(tmp_path, "evil.zip", zip_bytes([("a/x.txt", b"1"), ("a/x.txt", b"2")]))
    refused(tmp_path, raw, 100, entry="a/x.txt", match="already extracted")
    raw = raw_with(tmp_path, "evil.zip", zip_bytes([("a", b"a file"), ("a/x.txt", b"2")]))
    refused(tmp_path, raw, 100, entry="a/x.txt", match="in the way")


@pytest.mark.parametrize("how", ["damaged header", "two archives joined"])
def test_a_tar_that_would_lose_entries_silently_is_refused(tmp_path, how):
    good = tar_bytes([("a/b.txt", b"x" * 600), ("c/d.txt", b"y")])  # headers at 0 and 1536
    data = (
        good[:1536] + b"\xff" * 512 + good[2048:] if how == "damaged header" else good + tar_bytes([("e/f.txt", b"z")])
    )
    raw = raw_with(tmp_path, "broken.tar", data)
    refused(tmp_path, raw, 100, entry="a/b.txt" if how == "damaged header" else "c/d.txt", match="would be lost")


# -- bombs ---------------------------------------------------------------------------------------


def test_zip_bomb_refused_by_total_size_and_by_ratio(tmp_path):
    raw = raw_with(tmp_path, "bomb.zip", zip_bytes([("ok/a.txt", b"fine"), ("zeros.bin", bytes(20_000_000))]))
    refused(
        tmp_path,
        raw,
        5,
        entry="zeros.bin",
        match=r"extract\.max_total_mb \(5 MB\).*raise extract\.max_total_mb in params\.yaml",
    )
    refused(tmp_path, raw, 100, entry="zeros.bin", match=r"extract\.max_ratio \(200\)")
    result, files = extracted(tmp_path, raw, 100, 100_000)  # trusted: both limits raised
    assert result["files"] == 2 and len(files["zeros.bin"]) == 20_000_000


def test_small_very_compressible_files_do_not_trip_the_ratio(tmp_path):
    raw = raw_with(tmp_path, "labels.zip", zip_bytes([("labels.csv", b"a,b\n" * 200_000), ("x/a.txt", b"x")]))
    result, _ = extracted(tmp_path, raw, 100)
    assert result["files"] == 2


def test_tar_gz_bomb_refused_by_total_size_and_by_ratio(tmp_path):
    raw = raw_with(
        tmp_path, "bomb.tar.gz", tar_bytes([("ok/a.txt", b"fine"), ("zeros.bin", bytes(12_000_000))], "w:gz")
    )
    refused(tmp_path, raw, 5, entry="zeros.bin", match=r"extract\.max_total_mb")
    refused(tmp_path, raw, 100, entry="zeros.bin", match=r"the archive as a whole .* extract\.max_ratio")


@pytest.mark.parametrize("fmt", [".zip", ".tar"])
def test_too_many_files_are_refused(tmp_path, fmt):
    entries = [(f"c/{i}.txt", b"x") for i in range(5)]
    raw = raw_with(tmp_path, f"many{fmt}", zip_bytes(entries) if fmt == ".zip" else tar_bytes(entries))
    refused(tmp_path, raw, 100, 200, 4, entry="c/4.txt", match=r"extract\.max_files \(4\)")
    assert extracted(tmp_path, raw, 100, 200, 5)[0]["files"] == 5


def lie_about_size(data: bytes, declared: int) -> bytes:
    """Patch the uncompressed size in the local header and the central directory of a one-entry zip."""
    b = bytearray(data)
    local, central = b.index(b"PK\x03\x04"), b.index(b"PK\x01\x02")
    b[local + 22 : local + 26] = declared.to_bytes(4, "little")
    b[central + 24 : central + 28] = declared.to_bytes(4, "little")
    return bytes(b)


def test_zip_whose_headers_lie_about_the_size_is_refused(tmp_path):
    data = lie_about_size(zip_bytes([("zeros.bin", bytes(3_000_000))]), 1000)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.getinfo("zeros.bin").file_size == 1000  # the lie is what zipfile believes
    raw = raw_with(tmp_path, "liar.zip", data)
    refused(tmp_path, raw, 1, 10**9, entry="zeros.bin", match="damaged")


class Endless:
    """A stream of zeros that never ends: what a lying header may hide."""

    def __init__(self):
        self.given = 0

    def read(self, n):
        self.given += n
        return bytes(n)


def test_the_byte_counter_stops_a_stream_longer_than_declared():
    source, out = Source("liar.zip", 10**6, Budget(10**9, 10**6, 10)), io.BytesIO()
    with pytest.raises(SpecimenError, match=r"'x.bin'.*more than the 1000 bytes its header declares"):
        copy_limited(Endless(), out, 1000, source, "x.bin")
    assert len(out.getvalue()) <= 1000


def test_the_byte_counter_stops_at_the_total_limit_and_the_ratio_limit():
    out, stream = io.BytesIO(), Endless()
    budget = Budget(3 * CHUNK + 5, 10**6, 10)
    budget.bytes = 100  # spent on an earlier entry
    with pytest.raises(SpecimenError, match=r"'x.bin'.*extract\.max_total_mb"):
        copy_limited(stream, out, 10**12, Source("bomb.tar.gz", 10**6, budget), "x.bin")
    assert budget.bytes <= budget.max_bytes and len(out.getvalue()) == budget.bytes - 100
    out, stream = io.BytesIO(), Endless()
    with pytest.raises(SpecimenError, match=r"'x.bin'.*extract\.max_ratio"):
        copy_limited(stream, out, 10**12, Source("bomb.tar.gz", 10_000, Budget(10**12, 200, 10)), "x.bin")
    assert len(out.getvalue()) <= 2 * CHUNK and stream.given < 4 * CHUNK


# -- nested archives -----------------------------------------------------------------------------


def test_zip_in_zip_is_extracted_once_in_place_of_the_inner_archive(tmp_path):
    inner = zip_bytes([("flowers/rose/a.png", b"rose"), ("flowers/tulip/b.png", b"tulip")])
    raw = raw_with(tmp_path, "outer.zip", zip_bytes([("inner.zip", inner)]))
    result, files = extracted(tmp_path, raw, 100)
    assert files == {"flowers/rose/a.png": b"rose", "flowers/tulip/b.png": b"tulip"}
    assert result == {"files": 2, "skipped": 0, "listing": str(tmp_path / "work/extracted/files.csv")}
    # the inner zip is kept beside the listing and read in place: one copy of its files, not two
    assert everything(tmp_path / "work/extracted") == {"files.csv", "nested.zip"}
    assert (tmp_path / "work/extracted/nested.zip").read_bytes() == inner


def test_zip_in_zip_in_zip_unpacks_one_level_only(tmp_path):
    innermost = zip_bytes([("a.txt", b"deep")])
    raw = raw_with(tmp_path, "outer.zip", zip_bytes([("mid.zip", zip_bytes([("wrap/inner.zip", innermost)]))]))
    result, files = extracted(tmp_path, raw, 100)
    assert files == {"wrap/inner.zip": innermost} and result["files"] == 1


def test_one_archive_beside_macos_junk_is_extracted_and_the_junk_skipped(tmp_path):
    inner = tar_bytes([("cls/a.png", b"a"), ("cls/._a.png", b"fork")], "w:gz")
    junk = [("__MACOSX/", b""), ("__MACOSX/._inner.tar.gz", b"fork"), (".DS_Store", b"ds")]
    raw = raw_with(tmp_path, "outer.zip", zip_bytes(junk + [("inner.tar.gz", inner)]))
    result, files = extracted(tmp_path, raw, 100)
    assert files == {"cls/a.png": b"a"} and result["skipped"] == 3 and result["files"] == 1


def test_a_single_file_that_is_not_an_archive_by_name_is_left_alone(tmp_path):
    npz = zip_bytes([("x.npy", b"npy")])  # a zip inside, but a data file
    raw = raw_with(tmp_path, "outer.zip", zip_bytes([("features.npz", npz)]))
    assert extracted(tmp_path, raw, 100)[1] == {"features.npz": npz}
    raw = raw_with(tmp_path, "outer.zip", zip_bytes([("fake.zip", b"not a zip at all")]))
    assert extracted(tmp_path, raw, 100)[1] == {"fake.zip": b"not a zip at all"}


def test_the_total_limit_counts_both_levels(tmp_path):
    noise = random.Random(0).randbytes(3_000_000)  # incompressible: only the total limit can stop it
    inner = zip_bytes([("img/noise.bin", noise)], zipfile.ZIP_STORED)
    raw = raw_with(tmp_path, "outer.zip", zip_bytes([("inner.zip", inner)], zipfile.ZIP_STORED))
    message = refused(tmp_path, raw, 5, entry="img/noise.bin", match=r"extract\.max_total_mb")
    assert message.startswith("outer.zip > inner.zip: ")
    assert extracted(tmp_path, raw, 7)[1] == {"img/noise.bin": noise}


def test_a_hostile_inner_archive_is_refused_like_an_outer_one(tmp_path):
    inner = tar_bytes([("ok/a.txt", b"fine"), ("../../../escape.txt", b"evil")])
    raw = raw_with(tmp_path, "outer.zip", zip_bytes([("data/inner.tar", inner)]))
    message = refused(tmp_path, raw, 100, entry="../../../escape.txt", match="outside the target folder")
    assert message.startswith("outer.zip > data/inner.tar: ")


# -- what is kept and skipped --------------------------------------------------------------------


def test_macos_junk_and_dotfiles_are_skipped_windows_junk_kept(tmp_path):
    entries = [
        ("__MACOSX/", b""),
        ("__MACOSX/cls/._a.png", b"fork"),
        ("cls/._a.png", b"fork"),
        (".DS_Store", b"ds"),
        ("cls/.DS_Store", b"ds"),
        (".git/", b""),
        (".git/config", b"[core]"),
        ("cls/a.png", b"a"),
        ("cls/Thumbs.db", b"t"),
        ("cls/desktop.ini", b"d"),
        ("other\\b.png", b"b"),
        ("cls/empty/", b""),
    ]
    raw = raw_with(tmp_path, "mac.zip", zip_bytes(entries))
    result, files = extracted(tmp_path, raw, 100)
    assert files == {"cls/a.png": b"a", "cls/Thumbs.db": b"t", "cls/desktop.ini": b"d", "other/b.png": b"b"}
    assert result == {"files": 4, "skipped": 5, "listing": str(tmp_path / "work/extracted/files.csv")}
    assert everything(tmp_path / "work/extracted") == {"files.csv"}  # the files are read from the zip in place


@pytest.mark.parametrize("suffix", list(TAR_MODES))
def test_tar_happy_path(tmp_path, suffix):
    members = [
        (tar_info("./", tarfile.DIRTYPE), None),
        (tar_info("./cls", tarfile.DIRTYPE), None),
        ("./cls/a.png", b"a" * 5000),
        ("./cls/._a.png", b"fork"),
        ("./.DS_Store", b"ds"),
        ("dog/b.png", b"b"),
    ]
    raw = raw_with(tmp_path, f"data{suffix}", tar_bytes(members, TAR_MODES[suffix]))
    result, files = extracted(tmp_path, raw, 100)
    assert files == {"cls/a.png": b"a" * 5000, "dog/b.png": b"b"}
    assert result["files"] == 2 and result["skipped"] == 2
    # a tar cannot be read at an offset: its files are repacked, the same bytes on every run
    assert everything(tmp_path / "work/extracted") == {"files.csv", "pack.zip"}
    first = (tmp_path / "work/extracted/pack.zip").read_bytes()
    extracted(tmp_path, raw, 100)
    assert (tmp_path / "work/extracted/pack.zip").read_bytes() == first


def test_a_second_run_replaces_the_first(tmp_path):
    raw = raw_with(tmp_path, "a.zip", zip_bytes([("c/a.txt", b"1")]))
    extracted(tmp_path, raw, 100)
    raw = raw_with(tmp_path, "a.zip", zip_bytes([("c/b.txt", b"2")]))
    assert extract(raw, tmp_path / "work/extracted", 100)["files"] == 1
    assert tree(tmp_path / "work/extracted") == {"c/b.txt": b"2"}


def test_a_member_read_at_its_place_is_what_zipfile_reads_and_damage_there_is_refused(tmp_path):
    """preprocess's workers read each image at its offset in the zip (Extracted.located, read_located),
    without opening the zip: stored, deflated and (through zipfile) bzip2 members give zipfile's bytes,
    in a zip64 archive too, and a byte changed inside a member after extract fails its CRC."""
    from specimen.data.extracted import read_located

    rng = random.Random(0)
    payloads = {
        "cls/stored.bin": (bytes(rng.randrange(256) for _ in range(5000)), zipfile.ZIP_STORED),
        "cls/deflated.txt": (b"deflate me " * 3000, zipfile.ZIP_DEFLATED),
        "cls/bzip2.txt": (b"bzip2 me " * 3000, zipfile.ZIP_BZIP2),
    }
    for name, zip64 in (("plain.zip", False), ("zip64.zip", True)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for member, (data, method) in payloads.items():
                info = zipfile.ZipInfo(member)
                info.compress_type = method
                with zf.open(info, "w", force_zip64=zip64) as out:
                    out.write(data)
        (tmp_path / name).mkdir()
        raw = raw_with(tmp_path / name, name, buf.getvalue())
        out = tmp_path / name / "work/extracted"
        extract(raw, out, 100)
        listing = Extracted(out)
        for path in listing.paths:
            assert read_located(listing.located(path)) == payloads[path.removeprefix("ds/")][0], (name, path)
    # one byte of the stored member changed in place, after extract: its CRC no longer matches
    listing = Extracted(tmp_path / "plain.zip/work/extracted")
    archive, member, offset, *_ = listing.located("ds/cls/stored.bin")
    with open(archive, "r+b") as f:
        f.seek(offset + 30 + len(member) + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(zipfile.BadZipFile, match="bad CRC-32 for file 'cls/stored.bin'"):
        read_located(Extracted(tmp_path / "plain.zip/work/extracted").located("ds/cls/stored.bin"))
