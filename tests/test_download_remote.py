"""kaggle: and url: sources through the real clients, against fake servers on loopback."""

import hashlib
import io
import json
import os
import time
import zipfile

import pytest

from specimen import SpecimenError
from specimen.data.download import download
from tests.conftest import run
from tests.fake_kaggle import FakeKaggle
from tests.test_cli import params_with

SECRET = "0123456789abcdef-not-a-real-key"


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(40):  # big enough to be cut in the middle
            zf.writestr(f"shapes/class{i % 2}/{i}.bin", os.urandom(2000))
    return buf.getvalue()


def kaggle_env(tmp_path, server, **extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KAGGLE_") and k.lower() not in ("no_proxy", "http_proxy")
    }
    env.update(
        KAGGLE_API_ENVIRONMENT="LOCALHOST",
        HTTP_PROXY=server.proxy if server else "http://127.0.0.1:9",
        HOME=str(tmp_path / "home"),
        **extra,
    )
    return env


def specimen_download(tmp_path, source, env, version=None):
    params = params_with(tmp_path / "p", lambda p: p["dataset"].update(source=source, version=version))
    return run(["specimen", "download", "--params", str(params), str(tmp_path / "raw")], tmp_path, check=False, env=env)


@pytest.mark.parametrize("mode", ["ok", "drop_once"])
def test_kaggle_download_through_the_real_client(tmp_path, mode):
    payload = tiny_zip()
    with FakeKaggle(payload, mode) as server:
        proc = specimen_download(
            tmp_path,
            "kaggle:owner/tiny-shapes",
            kaggle_env(tmp_path, server, KAGGLE_USERNAME="me", KAGGLE_KEY=SECRET),
            version=2,
        )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "raw/tiny-shapes.zip").read_bytes() == payload
    meta = json.loads((tmp_path / "raw/source.json").read_text())
    assert meta["sha256"] == hashlib.sha256(payload).hexdigest()
    assert meta["kaggle"] == {
        "owner": "owner",
        "slug": "tiny-shapes",
        "title": "Tiny shapes",
        "version": 2,
        "licence": "CC0: Public Domain",
    }
    download_request = next(r for r in server.requests if r["path"].endswith("/DownloadDataset"))
    assert download_request["body"] == {"ownerSlug": "owner", "datasetSlug": "tiny-shapes", "datasetVersionNumber": 2}
    assert download_request["auth"].startswith("Basic ")  # credentials were sent to the server...
    for f in (tmp_path / "raw").iterdir():  # ...and written nowhere
        assert SECRET not in f.read_bytes().decode("latin-1") and "me" != meta.get("user")
    assert SECRET not in proc.stdout + proc.stderr
    if mode == "drop_once":
        assert server.body_gets == 2 and any(r.get("range") for r in server.requests)  # resumed, not restarted


@pytest.mark.parametrize("mode, words", [("403", "refused access (403)"), ("404", "no such dataset or version (404)")])
def test_kaggle_refusals_are_one_line(tmp_path, mode, words):
    with FakeKaggle(tiny_zip(), mode) as server:
        proc = specimen_download(
            tmp_path, "kaggle:owner/tiny-shapes", kaggle_env(tmp_path, server, KAGGLE_USERNAME="me", KAGGLE_KEY=SECRET)
        )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "raw").exists() and not list(tmp_path.glob(".raw*"))


def test_kaggle_without_credentials_says_both_ways_within_a_second(tmp_path, monkeypatch):
    proc = specimen_download(tmp_path, "kaggle:owner/tiny-shapes", kaggle_env(tmp_path, None))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "KAGGLE_USERNAME" in proc.stderr and "kaggle.json" in proc.stderr
    for name, value in kaggle_env(tmp_path, None).items():
        monkeypatch.setenv(name, value)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    start = time.perf_counter()
    with pytest.raises(SpecimenError, match="no Kaggle credentials"):
        download("kaggle:owner/tiny-shapes", tmp_path / "raw2")
    assert time.perf_counter() - start < 1.0


def test_kaggle_json_in_config_dir_is_used(tmp_path):
    config = tmp_path / "kcfg"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "me", "key": SECRET}))
    with FakeKaggle(tiny_zip()) as server:
        proc = specimen_download(
            tmp_path, "kaggle:owner/tiny-shapes", kaggle_env(tmp_path, server, KAGGLE_CONFIG_DIR=str(config))
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "raw/source.json").read_text())["kaggle"]["version"] == 3  # latest, from the API


def test_unreachable_kaggle_is_retried_then_one_line(tmp_path):
    proc = specimen_download(
        tmp_path, "kaggle:owner/tiny-shapes", kaggle_env(tmp_path, None, KAGGLE_USERNAME="me", KAGGLE_KEY=SECRET)
    )
    assert proc.returncode == 2 and "no connection after 4 tries" in proc.stderr and proc.stderr.count("\n") == 1


def test_url_source_checks_sha256(tmp_path):
    payload = tiny_zip()
    digest = hashlib.sha256(payload).hexdigest()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    with FakeKaggle(payload) as server:
        url = f"{server.proxy}/files/tiny-shapes.zip"
        ok = specimen_download(tmp_path / "a", f"url:{url}#sha256={digest}", env)
        bad = specimen_download(tmp_path / "b", f"url:{url}#sha256={'0' * 64}", env)
        missing = specimen_download(tmp_path / "c", f"url:{url}", env)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a/raw/tiny-shapes.zip").read_bytes() == payload
    assert bad.returncode == 2 and f"sha256 is {digest}" in bad.stderr and not (tmp_path / "b/raw").exists()
    assert missing.returncode == 2 and "#sha256=" in missing.stderr
