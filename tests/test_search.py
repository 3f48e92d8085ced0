"""specimen search on real files made here (PNG and JPEG written by OpenCV and Pillow, a grey and an
RGBA image, a non-image and a broken file), as a folder and as a zip: the table agrees with the
classic recipe written out below, the target comes first, -n is kept, errors are one line; vgg16
with random weights from a file; and the Snakemake rule matches dvc.yaml's stage for a target."""

import shutil
import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from specimen import SpecimenError
from specimen.cli import main
from specimen.tools.search import search
from tests.conftest import ROOT, make_project, run


@pytest.fixture
def data(tmp_path):
    """data/: 9 images in two folders (one a copy of another), a text file and a truncated PNG."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    for sub in ("flowers", "spiders/jumping"):
        (folder / sub).mkdir(parents=True)
    for i in range(3):  # each with a colour cast, so distances spread
        img = rng.integers(0, 256, (20 + 3 * i, 30, 3), dtype=np.uint8)
        img[..., i] //= 4
        cv2.imwrite(str(folder / f"flowers/rose{i}.png"), img)
        Image.fromarray(rng.integers(0, 256, (24, 18 + 2 * i, 3), dtype=np.uint8)).save(
            folder / f"spiders/jumping/{i}.jpg", quality=90
        )
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(folder / "flowers/grey.png")
    Image.fromarray(rng.integers(0, 256, (16, 20, 4), dtype=np.uint8), "RGBA").save(folder / "spiders/rgba.png")
    shutil.copy(folder / "flowers/rose1.png", folder / "spiders/copy_of_rose1.png")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / ".snakemake_timestamp").write_text("")  # dotfiles are left out, not counted
    (folder / "spiders/broken.png").write_bytes((folder / "flowers/rose0.png").read_bytes()[:100])
    return folder


def zipped(folder):
    path = folder.with_suffix(".zip")
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    return path


def recipe(path):
    """The classic exercise, step by step: imread, BGR to RGB, 8x8x8 calcHist, normalize, flatten."""
    image = cv2.imread(str(path))
    if image is None:
        return None
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    hist = cv2.calcHist([image], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    hist = cv2.normalize(hist, hist)
    return hist.flatten()


def brute_force(target, folder):
    """{file name: chi-square distance to the target} for every image file in the folder."""
    target_hist = recipe(target)
    distances = {}
    for path in sorted(folder.rglob("*")):
        hist = recipe(path) if path.is_file() else None
        if hist is not None:
            distances[path.relative_to(folder).as_posix()] = cv2.compareHist(target_hist, hist, cv2.HISTCMP_CHISQR)
    return distances


def expected_table(target_name, distances, n):
    rest = sorted((d, name) for name, d in distances.items() if name != target_name)[:n]
    return [target_name] + [name for _, name in rest], [0.0] + [d for d, _ in rest]


def test_the_table_is_the_classic_recipe_target_first_then_the_nearest(data, tmp_path):
    distances = brute_force(data / "flowers/rose1.png", data)
    assert len(distances) == 9  # the text file and the truncated PNG are no images
    r = search("flowers/rose1.png", data, tmp_path / "out/rose1.csv", n=100)
    names, values = expected_table("flowers/rose1.png", distances, 100)
    assert r["table"].filename.tolist() == names and r["images"] == 9 and r["skipped"] == 2
    np.testing.assert_allclose(r["table"].distance, values, rtol=1e-12, atol=0)
    assert names[1] == "spiders/copy_of_rose1.png" and values[1] == 0.0  # its exact copy, at distance 0
    csv = pd.read_csv(tmp_path / "out/rose1.csv")
    assert list(csv.columns) == ["filename", "distance"] and csv.filename.tolist() == names
    np.testing.assert_allclose(csv.distance, values, rtol=1e-5, atol=0)  # CSV: 6 significant digits


def test_n_nearest_in_ascending_order_and_the_target_found_by_name_or_path(data):
    distances = brute_force(data / "spiders/jumping/2.jpg", data)
    names, values = expected_table("spiders/jumping/2.jpg", distances, 3)
    for target in ("spiders/jumping/2.jpg", "jumping/2.jpg", str(data / "spiders/jumping/2.jpg")):
        table = search(target, data, n=3)["table"]
        assert table.filename.tolist() == names and len(table) == 4, target
        np.testing.assert_allclose(table.distance, values, rtol=1e-12, atol=0)
    assert table.distance.iloc[0] == 0.0 and table.distance.is_monotonic_increasing


def test_a_zip_gives_the_folders_table_and_an_outside_target_comes_first(data, tmp_path):
    archive = zipped(data)
    for target in ("flowers/grey.png", "rgba.png"):
        folder, zipped_table = search(target, data, n=20)["table"], search(target, archive, n=20)["table"]
        pd.testing.assert_frame_equal(folder, zipped_table, check_exact=True)
    outside = tmp_path / "query.png"
    shutil.copy(data / "flowers/rose0.png", outside)
    table = search(str(outside), archive, n=2)["table"]
    assert table.filename.tolist()[:2] == [str(outside), "flowers/rose0.png"] and table.distance.tolist()[:2] == [0, 0]
    distances = brute_force(outside, data)
    np.testing.assert_allclose(table.distance, [0.0] + sorted(distances.values())[:2], rtol=1e-12)


def params_file(tmp_path, **changes):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_command_writes_the_csv_and_prints_the_table_without_out(data, tmp_path, capsys):
    params = params_file(tmp_path, search={"n": 2})
    proc = run(
        [
            "specimen",
            "search",
            "rose2.png",
            "--data",  # the option's old name, still accepted
            str(data),
            "--params",
            str(params),
            "--out",
            str(tmp_path / "r.csv"),
        ],
        tmp_path,
    )
    names, values = expected_table("flowers/rose2.png", brute_force(data / "flowers/rose2.png", data), 2)
    csv = pd.read_csv(tmp_path / "r.csv")
    assert (
        csv.filename.tolist() == names
        and "2 nearest of 9 images" in proc.stdout
        and "2 other files skipped" in proc.stdout
    )
    np.testing.assert_allclose(csv.distance, values, rtol=1e-5)
    assert main(["search", "rose2.png", "--images", str(zipped(data)), "--params", str(params), "-n", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["filename", "distance"] and lines[1].split() == [names[0], "0"]
    assert lines[2].split()[0] == names[1] and lines[3].startswith("specimen search: 1 nearest") and len(lines) == 4


@pytest.mark.parametrize(
    "target, where, words",
    [
        ("tulip.png", "data", ["tulip.png: no such image file", "no file of that name in", "give a path to an image"]),
        ("notes.txt", "data", ["notes.txt: not an image OpenCV can read"]),
        ("broken.png", "zip", ["broken.png: not an image OpenCV can read"]),
        ("rose0.png", "empty", ["no files in it, nothing to search"]),
        ("rose0.png", "missing", ["missing: no such folder or zip file"]),
        ("rose0.png", "text", ["neither a folder nor a zip file"]),
    ],
)
def test_errors_are_one_line_saying_what_to_do(data, tmp_path, capsys, target, where, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").write_text("hello\n")
    path = zipped(data) if where == "zip" else tmp_path / where
    status = main(["search", target, "--images", str(path), "--params", str(params_file(tmp_path))])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("specimen search: error: "), err
    for w in words:
        assert w in err[0]


def test_only_unreadable_files_and_ambiguous_names_are_errors(data, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("x")
    with pytest.raises(SpecimenError, match="none of its 1 files is an image"):
        search(str(data / "flowers/rose0.png"), junk)
    shutil.copy(data / "flowers/rose0.png", data / "spiders/rose0.png")
    with pytest.raises(SpecimenError, match="2 files of that name .*flowers/rose0.png, spiders/rose0.png"):
        search("rose0.png", data)


def test_vgg16_features_from_a_weights_file_find_the_exact_copy_next(data, tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.applications.VGG16(include_top=False, weights=None, pooling="avg", input_shape=(32, 32, 3))
    model.save_weights(tmp_path / "vgg16.weights.h5")
    embed = {
        **yaml.safe_load((ROOT / "params.yaml").read_text())["embed"],
        "weights": str(tmp_path / "vgg16.weights.h5"),
        "batch_size": 3,
    }
    image = {"size": [32, 32], "resize": "pad", "color": "rgb"}
    table = search("flowers/rose1.png", data, n=4, features="vgg16", image=image, embed=embed)["table"]
    assert table.filename.tolist()[:2] == ["flowers/rose1.png", "spiders/copy_of_rose1.png"]
    assert table.distance[0] == 0.0 and 0 <= table.distance[1] < 1e-5 < table.distance[2]
    assert table.distance.is_monotonic_increasing and len(table) == 5 and (table.distance < 1 + 1e-6).all()


def test_the_rule_plans_a_search_per_target_as_dvc_does(tmp_path, monkeypatch):
    from tests.test_dag import covered, dvc_stages, snakemake_jobs

    project = make_project(tmp_path / "p", {"search.targets": ["train/3/a (1).png", "b.jpg"]})
    smk = snakemake_jobs(project, ["results/search/b.jpg.csv"])
    monkeypatch.chdir(project)  # DVC names stages relative to the working directory
    dvc = dvc_stages(project)
    assert {"search@train/3/a (1).png", "search@b.jpg"} <= set(dvc) and "search@b.jpg" in smk
    s, d = smk["search@b.jpg"], dvc["search@b.jpg"]
    assert s["cmd"] == d["cmd"] == 'specimen search "b.jpg" --images data/extracted --out "results/search/b.jpg.csv"'
    assert s["outputs"] == d["outputs"] == {"results/search/b.jpg.csv"}
    assert all(covered(i, d["deps"]) for i in s["inputs"]) and all(
        any(covered(i, {x}) for i in s["inputs"]) for x in d["deps"]
    )
    planned = run(["snakemake", "-n", "--cores", "1", "search_all"], project).stdout
    assert "results/search/train/3/a (1).png.csv" in planned and "results/search/b.jpg.csv" in planned


def test_help_says_how_to_search(capsys):
    from specimen.cli import parser

    assert "search" in parser().format_help()
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    for words in (
        "specimen search TARGET --images DIR_OR_ZIP",
        "HISTCMP_CHISQR",
        "search.targets",
        "--features",
        "-n N",
    ):
        assert words in text, words
