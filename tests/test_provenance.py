"""Provenance: what `dvc status` calls out of date is what `snakemake -n` would run, and dvc.lock
records what each artefact was really built with.

The code each stage depends on is derived from its imports (specimen.codedeps) and checked here
against both DAG files and against what Python's own modulefinder finds; the presets are complete
params files both tools accept; and the matrix changes one thing at a time (each top-level params
group, a module every stage runs, a module one stage runs, the local: dataset, a deleted output),
asks both tools, then runs partial, failed and overridden runs and checks that dvc.lock says true.

DVC lists a stage whose own record differs from the workspace; `dvc repro` then runs what depends
on its new outputs as it goes, while Snakemake plans both at once. So "what DVC reports" is the
stages `dvc status` lists and those downstream of them in DVC's graph; right after a Snakemake run
(dvc-commit has run) the plain `dvc status` list alone equals Snakemake's plan.
"""

import json
import modulefinder
import os
import re
import shutil
import sys
import zipfile
from contextlib import chdir, contextmanager
from pathlib import Path

import pytest
import yaml

from specimen.codedeps import stage_code, stage_entries
from tests.conftest import OPTIONAL, ROOT, make_project, run, set_dotted, snakemake_jobs

DVC_FILES = ["dvc.yaml", *OPTIONAL.values()]


def dvc_stages(project: Path) -> tuple:
    """({stage name: the stage} of every dvc.yaml in the project, DVC's graph of stage names: an edge
    from each stage to the stages it depends on)."""
    import networkx as nx
    from dvc.repo import Repo

    with chdir(project), Repo(str(project)) as repo:  # DVC names stages relative to the working folder
        graph = repo.index.graph
        names = {s: s.addressing for s in graph.nodes}
        return {name: s for s, name in names.items()}, nx.relabel_nodes(graph, names)


def code_deps_in_dvc(project: Path) -> dict:
    stages, _ = dvc_stages(project)
    return {name: sorted(d.def_path for d in s.deps if d.def_path.startswith("src/")) for name, s in stages.items()}


def stage_of(name: str) -> str:
    """The CLI stage a DVC stage runs: train@small_cnn -> train, tune/dvc.yaml:tune@small_cnn -> tune."""
    return name.split(":")[-1].split("@")[0]


# -- code dependencies -----------------------------------------------------------------------------


def test_each_stage_depends_in_both_dag_files_on_exactly_the_code_it_executes():
    """dvc.yaml's src/ deps and Snakemake's code inputs are, for every stage, the derived closure."""
    derived = {name: stage_code(stage_of(name)) for name in code_deps_in_dvc(ROOT)}
    wrong = []
    for name, listed in code_deps_in_dvc(ROOT).items():
        add, drop = sorted(set(derived[name]) - set(listed)), sorted(set(listed) - set(derived[name]))
        if add or drop:
            wrong.append(f"dvc.yaml stage {name}: add {add}, remove {drop}")
    assert not wrong, "the code each stage executes moved:\n" + "\n".join(wrong)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    targets = [
        "all",
        *[f"results/tune/{m}/best_params.yaml" for m in params["train"]["models"]],
        f"results/autoencoder/{params['autoencoder']['class']}/metrics.json",
    ]
    jobs = snakemake_jobs(ROOT, targets, forceall=True)
    assert set(jobs) == set(derived)
    for name, job in jobs.items():
        assert sorted(i for i in job["inputs"] if i.startswith("src/")) == derived[name], name
    # every module but the CLI's shared three runs in only some stages: the lists differ by stage
    assert {"src/specimen/data/demo/faults.py", "src/specimen/data/localsource.py"} <= set(derived["download"])
    assert "src/specimen/data/demo/__init__.py" not in derived["extract"]
    assert "src/specimen/train/setup.py" in derived["tune/dvc.yaml:tune@small_cnn"]
    commands = {f"src/specimen/commands/{m}.py" for m in ("__init__", "data", "clean", "train", "report", "tools")}
    shared = {"src/specimen/cli.py", "src/specimen/params.py", "src/specimen/__init__.py"} | commands
    assert all(shared <= set(d) for d in derived.values())


def test_the_derived_code_is_what_pythons_modulefinder_finds_each_stage_importing(tmp_path):
    """An independent reading: the stdlib's modulefinder scans the bytecode of a script made of cli.py,
    the commands package's shared part and the stage's runner alone (imports anywhere, functions
    included) and follows what they import."""
    import ast

    cli = (ROOT / "src/specimen/cli.py").read_text().replace("from specimen.commands import COMMANDS\n", "")
    package = sorted((ROOT / "src/specimen/commands").glob("*.py"))
    trees = [ast.parse(path.read_text()) for path in package]

    def runner_of(node):
        deco = node.decorator_list[0] if isinstance(node, ast.FunctionDef) and node.decorator_list else None
        return deco.args[0].value if isinstance(deco, ast.Call) and deco.func.id in ("stage", "tool") else None

    def among_commands(node):  # the package importing itself: registering, and the phases' decorators
        return isinstance(node, ast.ImportFrom) and node.module in ("__future__", "specimen.commands")

    runners = {runner_of(n) for tree in trees for n in tree.body} - {None}
    assert set(stage_entries(ROOT / "src")) < runners  # tools are no stages
    for stage in sorted(stage_entries(ROOT / "src")):
        kept = [n for tree in trees for n in tree.body if runner_of(n) in (None, stage) and not among_commands(n)]
        script = tmp_path / f"{stage}.py"
        script.write_text(cli + "\n" + ast.unparse(ast.Module(body=kept, type_ignores=[])))
        finder = modulefinder.ModuleFinder(
            path=[str(ROOT / "src")], excludes=["numpy", "pandas", "tensorflow", "keras"]
        )
        finder.run_script(str(script))
        found = {
            f"src/{Path(m.__file__).relative_to(ROOT / 'src').as_posix()}"
            for name, m in finder.modules.items()
            if name.split(".")[0] == "specimen" and m.__file__
        }
        files = {f"src/{p.relative_to(ROOT / 'src').as_posix()}" for p in package}
        assert sorted(found | files | {"src/specimen/cli.py"}) == stage_code(stage), stage


def test_the_closure_follows_relative_lazy_and_submodule_imports(tmp_path):
    """What the restructure into sub-packages will use: relative imports, `from pkg import module`,
    imports inside functions, parent __init__ files."""
    src = tmp_path / "src"
    files = {
        "specimen/__init__.py": "",
        "specimen/cli.py": "from specimen import params\nfrom specimen.commands import COMMANDS\ndef main():\n"
        "    from specimen import shared\n",
        "specimen/commands/__init__.py": "import os\nfrom specimen.commands import phase\n",
        "specimen/commands/phase.py": "from specimen.commands import stage\n@stage('one', 'h', 'm')\ndef one(p, a):\n"
        "    from specimen.clean import stage\n@tool('tool', 'h', 'm')\ndef t(p, a):\n    import specimen.unused\n",
        "specimen/params.py": "",
        "specimen/shared.py": "",
        "specimen/other.py": "",
        "specimen/unused.py": "",
        "specimen/clean/__init__.py": "from . import helpers\n",
        "specimen/clean/helpers.py": "",
        "specimen/clean/lazy.py": "",
        "specimen/clean/stage.py": "from .helpers import x\ndef f():\n    from ..other import y\n    from . import lazy\n",
    }
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    assert set(stage_entries(src)) == {"one"}
    assert stage_code("one", src) == sorted(
        f"src/specimen/{n}"
        for n in (
            "__init__.py",
            "cli.py",
            "commands/__init__.py",
            "commands/phase.py",
            "params.py",
            "shared.py",
            "other.py",
            "clean/__init__.py",
            "clean/helpers.py",
            "clean/lazy.py",
            "clean/stage.py",
        )
    )


# -- params files: complete, and accepted by both tools ---------------------------------------------


def test_every_preset_writes_out_every_key_and_both_tools_accept_it_as_params_yaml(tmp_path):
    from specimen import params as params_mod

    project = make_project(tmp_path / "p")
    schema = params_mod.schema_for(project / "params.yaml")
    presets = sorted((ROOT / "presets").glob("*.yaml"))
    assert len(presets) == 7
    top = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for preset in presets:
        raw = yaml.safe_load(preset.read_text())
        assert set(raw) == top, preset.name
        assert params_mod.missing(raw, schema) == [], preset.name
        assert "only model so far" not in preset.read_text()  # the comments are current
        shutil.copyfile(preset, project / "params.yaml")
        planned = run(["snakemake", "-n", "--cores", "1", "all"], project, check=False)
        assert planned.returncode == 0 and "rule download:" in planned.stdout, (preset.name, planned.stderr[-2000:])
        status = run(["dvc", "status", "--json"], project, check=False)  # DVC parses dvc.yaml (foreach, ${...})
        assert status.returncode == 0 and "download" in json.loads(status.stdout), (preset.name, status.stderr[-2000:])


def test_a_params_yaml_that_leaves_keys_to_the_defaults_is_refused_in_one_line_and_fill_writes_them(tmp_path):
    project = make_project(tmp_path / "p")
    path = project / "params.yaml"
    full = yaml.safe_load(path.read_text())
    text = path.read_text()
    # drop a whole group and one nested key, leaving the rest (comments too) as it is
    text = re.sub(r"\ntune:.*?\n\n", "\n", text, flags=re.S)
    text = re.sub(r"\n  patience: 8[^\n]*", "", text)
    path.write_text(text)
    for cmd in (
        ["snakemake", "-n", "--cores", "1", "all"],
        ["specimen", "ingest", "data/extracted", "data/interim"],
    ):
        proc = run(cmd, project, check=False)
        said = [line for line in proc.stderr.splitlines() if "not written out" in line]
        assert proc.returncode != 0 and len(said) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "train.patience, tune" in said[0] and "specimen params --fill" in said[0]
    out = run(["specimen", "params", "--fill"], project).stdout
    assert "wrote 2 keys" in out
    filled = yaml.safe_load(path.read_text())
    schema = yaml.safe_load((project / "workflow/schemas/params.schema.yaml").read_text())["properties"]
    patience = schema["train"]["properties"]["patience"]["default"]
    assert filled["train"]["patience"] == patience
    assert filled["tune"] == {k: v["default"] for k, v in schema["tune"]["properties"].items()}
    full["train"]["patience"], full["tune"] = patience, filled["tune"]
    assert filled == full  # nothing else changed
    assert "# specimen's one configuration" in path.read_text()  # the comments are kept
    assert run(["snakemake", "-n", "--cores", "1", "all"], project).returncode == 0


# -- dvc-commit's reach below DVC's commands ----------------------------------------------------------


def test_forget_removes_one_stage_record_and_dvc_then_calls_that_stage_changed(tmp_path):
    """The adapter over DVC's internals: if a DVC upgrade moves them, check() fails here first, in one
    line naming what it lacks; forget then does what dvc-commit needs of it."""
    from dvc.repo import Repo

    from specimen.dvcadapter import check, forget

    check()

    (tmp_path / "a").write_text("a")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  one:\n    cmd: cp a b\n    deps: [a]\n    outs: [b]\n"
        "  two:\n    cmd: cp b c\n    deps: [b]\n    outs: [c]\n"
    )
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    run(["dvc", "repro", "-q"], tmp_path)
    assert json.loads(run(["dvc", "status", "--json"], tmp_path).stdout) == {}
    with Repo(str(tmp_path)) as repo:
        two = next(s for s in repo.index.stages if s.name == "two")
        assert forget(repo, two) is True
        assert forget(repo, two) is False  # no record left to remove
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"one"} and lock["schema"] == "2.0"
    assert set(json.loads(run(["dvc", "status", "--json"], tmp_path).stdout)) == {"two"}


def test_large_outputs_enter_the_cache_as_hard_links_and_keep_their_times(tmp_path):
    """dvc-commit's link_into_cache: an output file of a MiB or more becomes DVC's cache object itself
    (the same inode, read-only), so its bytes are on disk once; the file's and its folder's mtimes,
    which Snakemake compares, do not move; smaller files are copied. A rebuild to the same bytes
    takes the object's place. DVC calls the stage current, and a clone pulls the same bytes."""
    import hashlib

    from dvc.repo import Repo

    from specimen.dvcadapter import LINK_BYTES, link_into_cache

    p = tmp_path / "p"
    p.mkdir()
    (p / "dvc.yaml").write_text("stages:\n  make:\n    cmd: python make.py\n    outs: [big.bin, out]\n")
    (p / "make.py").write_text(
        "import os\nos.makedirs('out', exist_ok=True)\n"
        f"open('big.bin', 'wb').write(os.urandom({LINK_BYTES}))\n"
        f"open('out/shard.npy', 'wb').write(bytes(range(256)) * {LINK_BYTES // 128})\n"
        "open('out/index.csv', 'w').write('id\\n1\\n')\n"
    )
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "p"]):
        run(cmd, p)

    def build():  # as Snakemake runs a rule: the command alone, then dvc-commit's two steps
        run([sys.executable, "make.py"], p)
        before = {f: os.stat(p / f) for f in ("big.bin", "out", "out/shard.npy", "out/index.csv")}
        with Repo(str(p)) as repo:
            stage = next(s for s in repo.index.stages if s.name == "make")
            linked = link_into_cache(stage)
            repo.commit(stage.addressing, force=True, relink=False)
        for f, st in before.items():
            assert os.stat(p / f).st_mtime_ns == st.st_mtime_ns, f
        return linked, before

    def cached(f):
        md5 = hashlib.md5((p / f).read_bytes()).hexdigest()
        return p / ".dvc/cache/files/md5" / md5[:2] / md5[2:]

    linked, first = build()
    assert linked == LINK_BYTES + 2 * LINK_BYTES
    for f in ("big.bin", "out/shard.npy"):
        assert os.path.samefile(p / f, cached(f)) and os.stat(cached(f)).st_mode & 0o777 == 0o444, f
    assert cached("out/index.csv").read_bytes() == b"id\n1\n" and not os.path.samefile(
        p / "out/index.csv", cached("out/index.csv")
    )
    assert json.loads(run(["dvc", "status", "--json"], p).stdout) == {}
    # rebuilt to the same bytes (new inodes, later times): the new files become the objects
    shard, big, old_big = (p / "out/shard.npy").read_bytes(), (p / "big.bin").read_bytes(), cached("big.bin")
    (p / "big.bin").unlink()
    shutil.rmtree(p / "out")
    linked, second = build()
    assert linked == 3 * LINK_BYTES and (p / "out/shard.npy").read_bytes() == shard  # big.bin: new random bytes
    assert old_big.read_bytes() == big  # the first build's object is whole, though its file is gone
    assert os.path.samefile(p / "out/shard.npy", cached("out/shard.npy"))
    assert second["out/shard.npy"].st_ino != first["out/shard.npy"].st_ino
    assert json.loads(run(["dvc", "status", "--json"], p).stdout) == {}
    # the objects are whole: pushed and pulled into a clone, the same bytes
    run(["dvc", "remote", "add", "-d", "r", str(tmp_path / "remote")], p)
    run(["git", "add", "-A"], p)
    run(["git", "commit", "-qm", "built"], p)
    run(["dvc", "push", "-q"], p)
    run(["git", "clone", "-q", str(p), str(tmp_path / "clone")], tmp_path)
    run(["dvc", "pull", "-q"], tmp_path / "clone")
    for f in ("big.bin", "out/shard.npy", "out/index.csv"):
        assert (tmp_path / "clone" / f).read_bytes() == (p / f).read_bytes(), f


# -- the matrix --------------------------------------------------------------------------------------

TINY = {
    "image.size": [24, 24],
    "train.epochs": 1,
    "train.patience": 1,
    "baselines.models": ["logistic_regression"],
    "baselines.inputs": ["pixels"],
    "explain.images": 2,
    "explain.layers": 1,
    "explain.classes": 2,
    "explain.steps": 2,
    "evaluate.gallery": 4,
    "evaluate.grid": 4,
    "tune.trials": 1,
    "tune.initial_points": 1,
    "tune.epochs": 1,
    "autoencoder.epochs": 1,
    "autoencoder.samples": 2,
    "autoencoder.generated": 4,
    "search.targets": ["train/0/img_00000.jpg"],
}
D, E, I, P, EM, C, B = "download", "extract", "ingest", "preprocess", "embed", "clean", "balance"  # noqa: E741
T, EV, X, BL, R = "train@small_cnn", "evaluate@small_cnn", "explain@small_cnn", "baselines", "report"
TU, AE, S = "tune/dvc.yaml:tune@small_cnn", "autoencoder/dvc.yaml:autoencoder", "search@train/0/img_00000.jpg"
ALL = {D, E, I, P, EM, C, B, T, EV, X, BL, R, TU, AE, S}
AFTER_TRAIN = {T, EV, X, R, TU, AE}


def targets(project: Path) -> list:
    """Everything a user can ask for: rule all (every artefact of the main DAG and the searches) and
    the optional stages' outputs."""
    p = yaml.safe_load((project / "params.yaml").read_text())
    return [
        "all",
        *[f"results/tune/{m}/best_params.yaml" for m in p["train"]["models"]],
        f"results/autoencoder/{p['autoencoder']['class']}/metrics.json",
    ]


def snakemake_plans(project: Path) -> set:
    return set(snakemake_jobs(project, targets(project)))


GRAPHS = {}  # DVC's graph of each project, read once (the changes here add or remove no stage)


def dvc_reports(project: Path) -> tuple[set, set]:
    """(the stages plain `dvc status` lists, those and every stage downstream of them in DVC's graph)."""
    import networkx as nx

    listed = set(json.loads(run(["dvc", "status", "--json"], project).stdout))
    if project not in GRAPHS:
        GRAPHS[project] = dvc_stages(project)[1]
    return listed, listed | {a for name in listed for a in nx.ancestors(GRAPHS[project], name)}


def both_plan(project: Path, after_a_run: bool = False) -> set:
    """What both tools would run now; fails unless they agree: Snakemake's plan is what `dvc status`
    lists and what is downstream of it, and right after a Snakemake run (dvc-commit has run) what
    `dvc status` lists alone."""
    smk = snakemake_plans(project)
    listed, dvc = dvc_reports(project)
    assert smk == dvc, f"Snakemake plans {sorted(smk)}; DVC reports {sorted(dvc)} (listed: {sorted(listed)})"
    if after_a_run:
        assert smk == listed, f"Snakemake plans {sorted(smk)}; dvc status lists {sorted(listed)}"
    return smk


def edit_params(project: Path, changes: dict) -> None:
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump(set_dotted(yaml.safe_load(path.read_text()), changes), sort_keys=False))


@contextmanager
def changed(project: Path, files: list):
    """Keep the bytes of `files` (paths under the project or absolute) and put them back afterwards."""
    saved = {Path(f): (project / f).read_bytes() if (project / f).exists() else None for f in files}
    try:
        yield
    finally:
        for f, data in saved.items():
            target = project / f
            if data is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(data)


def snakemake(project: Path, *args, check=True):
    return run(["snakemake", "--cores", "2", *args], project, check=check, timeout=900)


def model_epochs(project: Path) -> int:
    return json.loads((project / "results/models/small_cnn/meta.json").read_text())["epochs_run"]


def recorded(project: Path, stage: str) -> dict:
    """dvc.lock's record of a stage, read as DVC reads it (YAML 1.2: 1e-05 is a number)."""
    from ruamel.yaml import YAML

    lock_file = project / (f"{stage.split(':')[0].rsplit('/', 1)[0]}/dvc.lock" if ":" in stage else "dvc.lock")
    return YAML(typ="safe").load(lock_file.read_text())["stages"].get(stage.split(":")[-1])


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """The demo as a local: folder, every stage built once (optional ones and a search included)."""
    from specimen.data.demo import make_demo

    base = tmp_path_factory.mktemp("provenance")
    make_demo(base / "demo.zip", base / "demo.truth.json")
    with zipfile.ZipFile(base / "demo.zip") as zf:
        zf.extractall(base / "dataset")
    project = make_project(base / "project", {**TINY, "dataset.source": f"local:{base / 'dataset'}"})
    snakemake(project, *targets(project))
    return project, base / "dataset"


# The changes: params (one of each top-level group), or a callable(project, dataset) that changes a file.
def touch_module(module):
    def change(project, dataset):
        path = project / "src/specimen" / module
        path.write_text(path.read_text() + "\n# changed\n")

    change.files = [f"src/specimen/{module}"]
    return change


def edit_dataset(how):
    def change(project, dataset):
        victim = sorted((dataset / "train" / "0").iterdir())[1]
        if how == "modify":
            victim.write_bytes(victim.read_bytes() + b"\0")
        elif how == "add":
            shutil.copyfile(victim, victim.with_name("added_" + victim.name))
        elif how == "remove":
            victim.unlink()
        else:  # touch: a new time, the same bytes
            victim.touch()

    change.dataset = how
    return change


def delete_output(path):
    def change(project, dataset):
        (project / path).unlink()

    change.files = [path]
    return change


ROWS = [
    ("seed", {"seed": 7}, ALL - {D, E, S}),  # the search reads the extracted images
    ("dataset", {"dataset.split": {"train": 0.6, "valid": 0.2, "test": 0.2}}, ALL - {D, E, S}),
    ("extract", {"extract.max_files": 1000000}, ALL - {D}),
    ("image", {"image.resize": "crop"}, ALL - {D, E, I}),  # search lists image and embed (for networks)
    ("preprocess", {"preprocess.shard_size": 512}, ALL - {D, E, I, S}),
    ("embed", {"embed.batch_size": 32}, ALL - {D, E, I, P}),
    ("clean", {"clean.outliers.k": 8}, {C, B, T, EV, X, BL, R, TU, AE}),
    ("balance", {"balance.class_weight": "none"}, {B, T, EV, X, R, TU, AE}),
    ("train", {"train.learning_rate": 0.002}, AFTER_TRAIN),
    ("evaluate", {"evaluate.gallery": 3}, {EV, R}),
    ("explain", {"explain.steps": 3}, {X, R}),
    ("baselines", {"baselines.logistic_regression.C": 0.5}, {BL, R}),
    ("tune", {"tune.epochs": 2}, {TU}),
    ("autoencoder", {"autoencoder.noise": 0.2}, {AE}),
    ("search", {"search.n": 3}, {S}),
    ("a module every stage runs", touch_module("params.py"), ALL),
    ("a module one stage runs", touch_module("clean/gallery.py"), {C, B, T, EV, X, BL, R, TU, AE}),
    ("the local: dataset, a file changed", edit_dataset("modify"), ALL),
    ("the local: dataset, a file added", edit_dataset("add"), ALL),
    ("the local: dataset, a file removed", edit_dataset("remove"), ALL),
    ("the local: dataset, a file touched", edit_dataset("touch"), set()),
    ("one output deleted", delete_output("data/clean/summary.json"), {C, B, T, EV, X, BL, R, TU, AE}),
]


@pytest.mark.slow
def test_after_a_whole_run_both_tools_are_clean_even_plain_dvc_status_and_metrics(matrix):
    project, _ = matrix
    assert both_plan(project, after_a_run=True) == set()
    shown = run(["dvc", "metrics", "show"], project)
    assert "failed to load" not in shown.stdout + shown.stderr and "metrics.json" in shown.stdout
    assert Path(project / "local-source").resolve() == matrix[1]  # the link DVC hashes


@pytest.mark.slow
@pytest.mark.parametrize("name, change, expected", ROWS, ids=[r[0] for r in ROWS])
def test_one_change_both_tools_plan_the_same_stages(matrix, name, change, expected):
    project, dataset = matrix
    backup = dataset.parent / "dataset-backup"
    if getattr(change, "dataset", None):
        shutil.copytree(dataset, backup, copy_function=shutil.copy2)
    files = ["params.yaml", *getattr(change, "files", [])]
    try:
        with changed(project, files):
            if callable(change):
                change(project, dataset)
            else:
                edit_params(project, change)
            assert both_plan(project) == expected
    finally:
        if backup.exists():
            shutil.rmtree(dataset)
            backup.rename(dataset)
    if name == ROWS[-1][0]:  # each change put back: nothing to run for either
        assert both_plan(project) == set()


@pytest.mark.slow
def test_partial_failed_and_overridden_runs_leave_a_record_that_is_true(matrix):
    project, dataset = matrix
    # 1. train.epochs changed, then only balance forced: the model is still the old one, and both say so
    edit_params(project, {"train.epochs": 2})
    snakemake(project, "--forcerun", "balance", "--until", "balance")
    assert both_plan(project, after_a_run=True) == AFTER_TRAIN
    # dvc.lock's record of train still says 1 epoch, as the model that is there was trained
    assert recorded(project, T)["params"]["params.yaml"]["train"]["epochs"] == 1 == model_epochs(project)
    # 2. one target: the model, and nothing after it
    snakemake(project, "results/models/small_cnn/model.keras")
    assert both_plan(project, after_a_run=True) == AFTER_TRAIN - {T}
    assert recorded(project, T)["params"]["params.yaml"]["train"]["epochs"] == 2 == model_epochs(project)
    # 3. a failed run: explain fails (a `specimen` first on PATH that fails it and runs the real one
    # for every other stage); what finished is recorded, what did not is not
    fake = project.parent / "failing-bin"
    fake.mkdir(exist_ok=True)
    (fake / "specimen").write_text(
        f'#!/bin/sh\n[ "$1" = explain ] && {{ echo "specimen explain: error: failed" >&2; '
        f'exit 2; }}\nexec {shutil.which("specimen")} "$@"\n'
    )
    (fake / "specimen").chmod(0o755)
    edit_params(project, {"train.epochs": 1})
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    failed = run(["snakemake", "--cores", "2", *targets(project)], project, check=False, env=env, timeout=900)
    assert failed.returncode != 0 and "Error in rule explain" in failed.stdout + failed.stderr
    assert "specimen dvc-commit: recorded" in failed.stdout + failed.stderr
    left = both_plan(project, after_a_run=True)
    assert {X, R} <= left <= AFTER_TRAIN - {T}  # what had not started, too
    assert T not in left and recorded(project, T)["params"]["params.yaml"]["train"]["epochs"] == 1 == model_epochs(
        project
    )
    # 4. --configfile overrides: what they changed is not params.yaml's, so it stays to run again
    # (the run also finishes what the failed one left)
    (project / "override.yaml").write_text(yaml.safe_dump({"train": {"epochs": 2}}))
    out = snakemake(project, *targets(project), "--configfile", "override.yaml")  # it takes several files
    assert "records only the stages" in out.stdout + out.stderr
    assert both_plan(project, after_a_run=True) == AFTER_TRAIN  # the next test runs them


@pytest.mark.slow
def test_every_kind_of_change_at_once_then_a_run_records_what_each_artefact_was_built_with(matrix):
    project, dataset = matrix
    edit_params(project, {k: v for _, change, _ in ROWS if isinstance(change, dict) for k, v in change.items()})
    touch_module("params.py")(project, dataset)
    edit_dataset("add")(project, dataset)
    (project / "data/clean/summary.json").unlink()
    assert both_plan(project) == ALL
    out = snakemake(project, *targets(project)).stdout
    assert "recorded 15 DVC stages" in out
    assert both_plan(project, after_a_run=True) == set()
    params = yaml.safe_load((project / "params.yaml").read_text())
    for name in ALL:  # each record holds params.yaml's values of the params its stage lists
        for key, value in recorded(project, name).get("params", {}).get("params.yaml", {}).items():
            node = params
            for part in key.split("."):
                node = node[part]
            assert value == node, (name, key)
    assert json.loads((project / "data/processed/meta.json").read_text())["resize"] == "crop"
    assert recorded(project, T)["params"]["params.yaml"]["train"]["epochs"] == model_epochs(project)
    manifest = (project / "data/interim/manifest.csv").read_text()
    assert "added_" in manifest  # the added file reached the DAG
