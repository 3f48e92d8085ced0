"""What an archive entry may be, and how extract accounts for one: names that stay inside the
target, junk that is skipped, the budget of files, bytes and compression ratio over both levels of
a nested archive, byte-counted reads (headers can lie), and the listing that refuses a name twice.
extract.py walks zip and tar members through these."""

from __future__ import annotations

import contextlib
import lzma
import posixpath
import re
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

from specimen import SpecimenError

CHUNK = 1 << 20
RATIO_FLOOR = 1 << 20  # bytes: smaller entries may compress as well as they like
DRIVE = re.compile(r"^[A-Za-z]:")
UNSAFE = "the archive is damaged or crafted: repack it without this entry, or get it from a trusted source"
TRUST = "raise {key} in params.yaml if you trust this archive"
DAMAGED = "check dataset.source, or download the archive again if it is damaged"


def refusal(where: str, entry: str, why: str) -> SpecimenError:
    return SpecimenError(f"{where}: refusing entry {entry!r}: {why}")


@dataclass
class Budget:
    """The limits of one extract call and what has been spent, over both levels of a nested archive."""

    max_bytes: int
    max_ratio: float
    max_files: int
    bytes: int = 0  # actually written
    entries: int = 0  # file entries seen, kept or skipped
    files: int = 0  # files written
    skipped: int = 0  # file entries skipped as macOS junk or dotfiles

    def count_entry(self, where: str, entry: str) -> None:
        self.entries += 1
        if self.entries > self.max_files:
            raise refusal(
                where,
                entry,
                f"the archive holds more than extract.max_files ({self.max_files}) files; "
                + TRUST.format(key="extract.max_files"),
            )

    def check_total(self, total: int, where: str, entry: str) -> None:
        if total > self.max_bytes:
            raise refusal(
                where,
                entry,
                f"the archive unpacks to more than extract.max_total_mb "
                f"({self.max_bytes / 1e6:g} MB); " + TRUST.format(key="extract.max_total_mb"),
            )

    def check_ratio(self, unpacked: int, packed: int, where: str, entry: str, what: str) -> None:
        if unpacked > RATIO_FLOOR and unpacked > self.max_ratio * packed:
            raise refusal(
                where,
                entry,
                f"{what} is compressed more than extract.max_ratio ({self.max_ratio:g}) "
                "times, like a zip bomb; " + TRUST.format(key="extract.max_ratio"),
            )


@dataclass
class Source:
    """One archive being unpacked: its name in messages, its size on disk, the bytes written from it."""

    label: str
    size: int
    budget: Budget
    written: int = 0


def check_name(where: str, name: str) -> str | None:
    """The entry's path below the target (posix, normalised), None for the root itself, or refuse it."""
    s = name.replace("\\", "/")
    if "\0" in s:
        raise refusal(where, name, f"a NUL byte in its name; {UNSAFE}")
    if s.startswith("/") or DRIVE.match(s) or ":" in s.split("/")[0]:
        raise refusal(where, name, f"an absolute path would be written outside the target folder; {UNSAFE}")
    norm = posixpath.normpath(s) if s else "."
    if norm == ".." or norm.startswith("../"):
        raise refusal(where, name, f"it would be written outside the target folder; {UNSAFE}")
    return None if norm == "." else norm


def is_junk(rel: str) -> bool:
    """macOS resource forks (``__MACOSX/``, ``._x``) and dotfiles or dot-folders (``.DS_Store``, ``.git/``)."""
    return any(part == "__MACOSX" or part.startswith(".") for part in rel.split("/"))


class Counted:
    """A reader that counts the bytes it passes on and stops at the first one beyond a limit."""

    def __init__(self, stream, declared: int, source: Source, entry: str):
        self.stream, self.declared, self.source, self.entry = stream, declared, source, entry
        self.count = 0

    def read(self, n: int = CHUNK) -> bytes:
        data = self.stream.read(CHUNK if n is None or n < 0 else min(n, CHUNK))
        self.count += len(data)
        src, budget = self.source, self.source.budget
        if self.count > self.declared:
            raise refusal(
                src.label, self.entry, f"it holds more than the {self.declared} bytes its header declares; {UNSAFE}"
            )
        budget.check_total(budget.bytes + len(data), src.label, self.entry)
        budget.check_ratio(src.written + len(data), src.size, src.label, self.entry, "the archive as a whole")
        budget.bytes += len(data)
        src.written += len(data)
        return data


def copy_limited(stream, out, declared: int, source: Source, entry: str) -> int:
    """Copy `stream` into `out` in chunks; no byte past the declared size or the limits is written."""
    counted = Counted(stream, declared, source, entry)
    shutil.copyfileobj(counted, out, CHUNK)
    return counted.count


class Listing:
    """The files found so far (path: archive, member, bytes), refusing a second file of one name
    and a file where a folder is, as writing them to a folder would have."""

    def __init__(self):
        self.files: dict[str, tuple[str, str, int]] = {}
        self.dirs: set[str] = set()

    def add_dir(self, rel: str, where: str, entry: str) -> None:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            if folder in self.files:
                raise refusal(where, entry, f"a file already extracted is in the way of its folder; {UNSAFE}")
            self.dirs.add(folder)

    def add(self, rel: str, where_read: tuple[str, str, int], source: Source, entry: str) -> None:
        """rel's bytes lie in where_read = (archive, member, bytes)."""
        if "/" in rel:
            self.add_dir(posixpath.dirname(rel), source.label, entry)
        if rel in self.files or rel in self.dirs:
            raise refusal(source.label, entry, f"a file or folder of that name was already extracted; {UNSAFE}")
        self.files[rel] = where_read
        source.budget.files += 1


class Discard:
    """A file that forgets what is written to it: checking an entry's bytes without keeping them."""

    def write(self, data: bytes) -> int:
        return len(data)


@contextlib.contextmanager
def reading(where: str, entry: str):
    """Turn what a damaged or crafted archive raises while reading an entry into one line."""
    try:
        yield
    except SpecimenError:
        raise
    except (
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
        zlib.error,
        lzma.LZMAError,
        zipfile.BadZipFile,
        tarfile.TarError,
    ) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecimenError(
            f"{where}: cannot read entry {entry!r} ({why}); the archive is damaged, encrypted or "
            "crafted: download it again, or repack it without a password"
        ) from None
