"""The Snakefile and dvc.yaml describe the same DAG: same commands, inputs and outputs per stage."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import OPTIONAL, snakemake_jobs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def optional_targets(workdir: Path) -> list:
    """A file from each optional rule's jobs, one per model: what a user asks Snakemake for."""
    import yaml

    params = yaml.safe_load((workdir / "params.yaml").read_text())
    models = params["train"]["models"]
    return [f"results/tune/{m}/best_params.yaml" for m in models] + [
        f"results/autoencoder/{params['autoencoder']['class']}/metrics.json"
    ]  # one job: the class in params


def dvc_stages(workdir: Path) -> dict:
    from dvc.repo import Repo

    with Repo(str(workdir)) as repo:
        return {
            s.addressing: {
                "cmd": " ".join(s.cmd.split()),
                "deps": {str(Path(d.def_path)) for d in s.deps if not d.def_path.endswith(".yaml")},
                "outputs": {str(Path(o.def_path)) for o in s.outs},
            }
            for s in repo.index.stages
        }


def covered(path: str, deps: set) -> bool:
    """DVC may depend on a folder that holds the files Snakemake lists one by one."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_snakemake_and_dvc_describe_the_same_dag():
    """Every DVC stage (all dvc.yaml files) against the jobs of the default target plus the optional ones."""
    smk, dvc = snakemake_jobs(ROOT, ["all", *optional_targets(ROOT)], forceall=True), dvc_stages(ROOT)
    assert set(smk) == set(dvc), "the two DAGs have different stages"
    assert (
        len(smk) == 14
    )  # download .. evaluate, explain for one model (10 jobs), report, baselines; and tune, autoencoder, optional
    for name in sorted(smk):
        s, d = smk[name], dvc[name]
        assert s["cmd"] == d["cmd"], name
        assert s["outputs"] == d["outputs"], name
        assert all(covered(i, d["deps"]) for i in s["inputs"]), f"{name}: Snakemake input missing from dvc.yaml"
        assert all(any(covered(i, {dep}) for i in s["inputs"]) for dep in d["deps"]), (
            f"{name}: DVC dep missing from the Snakefile"
        )


def test_every_param_dvc_lists_is_in_params_yaml():
    """DVC reads params.yaml as it is (no schema defaults): a key it lists must be written there."""
    import yaml
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    with Repo(str(ROOT)) as repo:
        listed = {key for s in repo.index.stages for d in s.deps if isinstance(d, ParamsDependency) for key in d.params}
    assert {"dataset.version", "image.max_pixels", "train"} <= listed
    for key in sorted(listed):
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"dvc.yaml lists {key}, params.yaml lacks it"
            node = node[part]


def test_the_optional_stages_stay_out_of_the_default_runs():
    """`snakemake` (all) and `dvc repro` (./dvc.yaml) plan everything but the optional stages."""
    default = set(snakemake_jobs(ROOT, forceall=True))
    assert len(default) == 12 and not any(name.startswith(tuple(OPTIONAL.values())) for name in default)
    out = subprocess.run(
        [BIN / "dvc", "repro", "--dry", "--force"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    planned = set(re.findall(r"Running stage '([^']+)'", out))
    assert planned == default  # the same 12: DVC's default target leaves tune/dvc.yaml alone


def test_each_trained_model_is_a_dvc_model_artifact():
    """dvc.yaml's artifacts: one per name in train.models, typed model, at the model train writes."""
    import yaml
    from dvc.repo import Repo
    from dvc.repo.artifacts import name_is_compatible

    models = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["models"]
    with Repo(str(ROOT)) as repo:
        artifacts = repo.artifacts.read()["dvc.yaml"]
        train_outs = {str(o.def_path) for s in repo.index.stages if s.addressing.startswith("train@") for o in s.outs}
    expected = {m.replace("_", "-"): f"results/models/{m}/model.keras" for m in models}
    missing = sorted(set(expected) - set(artifacts))
    assert not missing, f"add to dvc.yaml's artifacts: {missing}"
    assert {name: a.path for name, a in artifacts.items()} == expected
    assert all(a.type == "model" and name_is_compatible(name) for name, a in artifacts.items())
    assert set(expected.values()) <= train_outs
