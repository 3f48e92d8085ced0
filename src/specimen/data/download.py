"""download: put the dataset's archive into data/raw/ with its source metadata (source.json).

Sources:
- ``demo``: generated from scikit-learn's digits, with ``demo.truth.json`` beside the zip.
- ``local:PATH``: a zip or tar (copied) or a folder (zipped, reproducibly).
- ``kaggle:OWNER/SLUG``: through the official kaggle client; ``dataset.version`` pins a version.
  Credentials: ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, ``KAGGLE_API_TOKEN``, or ``kaggle.json`` in
  ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle/``. They are never written anywhere.
- ``url:URL#sha256=HEX``: any HTTP(S) file, checked against its sha256.

Connection errors are retried with backoff; the download lands in a temporary folder that
becomes data/raw/ only when complete, so a killed or failed download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from specimen import SpecimenError
from specimen.artefacts import ARCHIVE_SUFFIXES, atomic_dir, sha256_file, write_json, zip_entry
from specimen.data.localsource import dataset_files


def download(source: str, out_dir: Path, version: int | None = None) -> dict:
    kind, rest = parse_source(source)
    with atomic_dir(out_dir) as tmp:
        if kind == "demo":
            from specimen.data.demo import make_demo

            archive = tmp / "demo.zip"
            make_demo(archive, tmp / "demo.truth.json")
            meta = {"source": "demo", "name": "demo"}
        elif kind == "local":
            path = Path(rest).expanduser()
            if not path.exists():
                raise SpecimenError(f"dataset.source local:{rest}: no such file or folder")
            if path.is_dir():
                archive = tmp / f"{path.name}.zip"
                zip_folder(path, archive)
            elif suffix := archive_suffix(path):
                archive = tmp / (path.name[: -len(suffix)] + suffix)
                shutil.copyfile(path, archive)
            else:
                raise SpecimenError(
                    f"dataset.source local:{rest}: not a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive"
                )
            meta = {"source": f"local:{rest}", "name": archive.name[: -len(archive_suffix(archive))]}
        elif kind == "kaggle":
            archive, meta = fetch_kaggle(rest, version, tmp)
        else:
            archive, meta = fetch_url(rest, tmp)
        meta.update(archive=archive.name, sha256=sha256_file(archive), bytes=archive.stat().st_size)
        write_json(tmp / "source.json", meta)
    return meta


def parse_source(source: str) -> tuple[str, str]:
    """'kaggle:owner/slug' -> ('kaggle', 'owner/slug'); 'demo' -> ('demo', '')."""
    if source == "demo":
        return "demo", ""
    kind, sep, rest = source.partition(":")
    if not sep or kind not in ("local", "kaggle", "url") or not rest:
        raise SpecimenError(
            f"dataset.source {source!r}: expected demo, local:PATH, kaggle:OWNER/SLUG or url:URL#sha256=HEX"
        )
    if kind == "kaggle" and (rest.count("/") != 1 or not all(rest.split("/"))):
        raise SpecimenError(
            f"dataset.source {source!r}: a Kaggle dataset is kaggle:OWNER/SLUG, e.g. kaggle:gpiosenka/yikes-spiders-15-species"
        )
    return kind, rest


def archive_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if name.endswith(s)), None)


def zip_folder(folder: Path, zip_path: Path) -> None:
    """A folder as a zip that depends only on the files' names and bytes (sorted, fixed times)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for path in dataset_files(folder):
            zf.writestr(zip_entry(path.relative_to(folder).as_posix()), path.read_bytes())


def with_retries(what: str, call, attempts: int = 4, first_delay: float = 1.0):
    """Call `call()`, retrying connection errors and timeouts with exponential backoff."""
    import requests

    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (requests.ConnectionError, requests.Timeout) as e:
            if attempt == attempts:
                raise SpecimenError(
                    f"{what}: no connection after {attempts} tries ({type(e).__name__}); "
                    "check the network or proxy settings and run again"
                ) from None
            time.sleep(first_delay * 2 ** (attempt - 1))


def kaggle_credentials() -> str | None:
    """Where the Kaggle credentials come from, or None (checked before importing the client,
    which otherwise prints help and exits)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    for name in ("kaggle.json", "access_token", "access_token.txt"):
        if (config_dir / name).is_file():
            return str(config_dir / name)
    return None


def _kaggle_http_error(slug: str, e) -> SpecimenError:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return SpecimenError(
            f"kaggle:{slug}: Kaggle refused access ({status}): check your credentials, and accept the "
            f"dataset's rules at kaggle.com/datasets/{slug} if it has any"
        )
    if status == 404:
        return SpecimenError(
            f"kaggle:{slug}: Kaggle has no such dataset or version (404): check dataset.source "
            "and dataset.version against kaggle.com/datasets"
        )
    return SpecimenError(f"kaggle:{slug}: Kaggle answered {status or 'with an error'}: {str(e).splitlines()[0][:160]}")


def fetch_kaggle(slug: str, version: int | None, dest: Path) -> tuple[Path, dict]:
    """Download OWNER/SLUG (optionally a pinned version) as dest/<slug>.zip with the official client."""
    if kaggle_credentials() is None:
        raise SpecimenError(
            "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), or save "
            "kaggle.json from kaggle.com/settings in ~/.kaggle/ (or in $KAGGLE_CONFIG_DIR)"
        )
    import contextlib
    import io

    import requests

    with contextlib.redirect_stdout(io.StringIO()):  # the client prints on import and on download
        from kaggle.api.kaggle_api_extended import KaggleApi
        from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetRequest

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit:
            raise SpecimenError(
                f"kaggle:{slug}: the Kaggle credentials from {kaggle_credentials()} were not accepted; "
                "create a new API token at kaggle.com/settings"
            ) from None
    owner, name = slug.split("/")

    def dataset_info():
        with api.build_kaggle_client() as client:
            request = ApiGetDatasetRequest()
            request.owner_slug, request.dataset_slug = owner, name
            return client.datasets.dataset_api_client.get_dataset(request)

    def fetch():
        with contextlib.redirect_stdout(io.StringIO()):
            api.dataset_download_files(f"{slug}/{version}" if version else slug, path=str(dest), force=True, quiet=True)

    try:
        info = with_retries(f"kaggle:{slug}", dataset_info)
        with_retries(f"kaggle:{slug}", fetch)
    except requests.HTTPError as e:
        raise _kaggle_http_error(slug, e) from None
    except (requests.RequestException, OSError) as e:
        raise SpecimenError(f"kaggle:{slug}: download failed ({type(e).__name__}): run again to retry") from None
    archive = dest / f"{name}.zip"
    if not archive.is_file():
        raise SpecimenError(f"kaggle:{slug}: the client reported success but wrote no {archive.name}")
    return archive, {
        "source": f"kaggle:{slug}",
        "name": name,
        "kaggle": {
            "owner": owner,
            "slug": name,
            "title": info.title or name,
            "version": version or info.current_version_number,
            "licence": info.license_name or "unknown",
        },
    }


def fetch_url(spec: str, dest: Path) -> tuple[Path, dict]:
    """Download URL#sha256=HEX into dest/, streaming, and check the sha256."""
    import requests

    url, _, fragment = spec.partition("#")
    expected = fragment.removeprefix("sha256=").lower()
    if not fragment.startswith("sha256=") or len(expected) != 64:
        raise SpecimenError(
            f"dataset.source url:{url}: add the file's sha256 as url:{url}#sha256=<64 hex digits> "
            "(sha256sum FILE prints it) so every download is checked"
        )
    filename = Path(urlparse(url).path).name or "dataset.zip"
    if archive_suffix(Path(filename)) is None:
        filename += ".zip"
    archive = dest / filename

    def fetch():
        digest = hashlib.sha256()
        with requests.get(url, stream=True, timeout=60) as r:
            r.raise_for_status()
            with open(archive, "wb") as f:
                for chunk in r.iter_content(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
        return digest.hexdigest()

    try:
        actual = with_retries(f"url:{url}", fetch)
    except requests.HTTPError as e:
        raise SpecimenError(f"url:{url}: the server answered {e.response.status_code}; check the address") from None
    except requests.RequestException as e:
        raise SpecimenError(f"url:{url}: download failed ({type(e).__name__}): run again to retry") from None
    if actual != expected:
        raise SpecimenError(
            f"url:{url}: sha256 is {actual}, not the {expected} given in dataset.source; "
            "the file changed or the address is wrong"
        )
    return archive, {"source": f"url:{url}", "name": filename[: -len(archive_suffix(Path(filename)))]}
