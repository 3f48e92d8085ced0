# Helpers and validation shared by the rules.
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, "../schemas/params.schema.yaml")


def key_sorted(value):
    """`value` with every mapping's keys in sorted order."""
    if isinstance(value, dict):
        return {k: key_sorted(value[k]) for k in sorted(value)}
    return [key_sorted(v) for v in value] if isinstance(value, list) else value


# Snakemake's params trigger compares mappings in order: the same values from a --configfile
# written in another key order would re-run every job. One order, whatever the file's.
_config = key_sorted(config)
config.clear()
config.update(_config)

MODELS = config["train"]["models"]
FEATURES = f"data/features/{config['embed']['extractor']}.npz"
CONDA_ENV = "../../envs/specimen.yaml"


wildcard_constraints:
    model="|".join(MODELS),


def model_report(figure):
    """report() placement of one model's figure: under "Models", one subcategory per model."""
    return dict(category="Models", subcategory="{model}", labels={"model": "{model}", "figure": figure})


PROJECT = Path(workflow.basedir)
# Where each DVC stage is declared: the optional ones apart, so that `dvc repro` leaves them alone.
DVC_FILES = ("dvc.yaml", "tune/dvc.yaml", "autoencoder/dvc.yaml")


def code(stage):
    """The package's files `specimen <stage>` executes, derived from its imports (specimen.codedeps):
    a change to any of them re-runs the stage. dvc.yaml lists the same files (tests/test_provenance.py)."""
    from specimen.codedeps import stage_code

    return stage_code(stage, PROJECT / "src")


def _dvc_params():
    """{stage: the params its DVC stage lists} from the dvc.yaml files."""
    lists = {}
    for name in DVC_FILES:
        for stage, spec in yaml.safe_load((PROJECT / name).read_text())["stages"].items():
            lists[stage] = spec.get("do", spec).get("params", [])
    return lists


DVC_PARAMS = _dvc_params()


def tracked(stage):
    """The params that the DVC stage of the same name lists, with this run's values: the rule's
    params, so that a change of any of them re-runs the same stages under both tools."""
    values = {}
    for key in DVC_PARAMS[stage]:
        node = config
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return values


# A local: dataset's content is an input of download (specimen.data.localsource): DVC follows the link
# local-source to it; Snakemake compares the content's digest, a param of the rule.
def local_source():
    from specimen.data.localsource import LINK, digest, update_link

    update_link(config["dataset"]["source"], PROJECT)
    return LINK, digest(config["dataset"]["source"], PROJECT / ".snakemake/specimen/local-source.json")


LOCAL_SOURCE, LOCAL_SOURCE_DIGEST = local_source()


def effective_params(config):
    """Hand the stages the config Snakemake runs with (params.yaml plus any --configfile or
    --config overrides): written once, exported to every job as SPECIMEN_PARAMS, which
    `specimen` reads instead of params.yaml.
    Returns whether it is exactly params.yaml (only then may DVC record the run as its own)."""
    path = Path(".snakemake/specimen/params.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    shell.prefix(f"export SPECIMEN_PARAMS={path} SPECIMEN_PROJECT={shlex.quote(str(PROJECT))}; ")
    own = yaml.safe_load(Path("params.yaml").read_text())
    validate(own, "../schemas/params.schema.yaml")
    if Path(".dvc").is_dir():  # DVC reads params.yaml as written: every key must be there
        from specimen import SpecimenError
        from specimen.params import check_complete

        try:
            check_complete("params.yaml")
        except SpecimenError as e:
            print(f"specimen: {e}", file=sys.stderr)
            sys.exit(1)
    return own == config


PARAMS_ARE_PARAMS_YAML = effective_params(config)


# DVC's lock while Snakemake runs (the Snakefile's onstart, onerror and onsuccess).
DVC_LOCK = []


def hold_dvc_lock():
    """DVC's repository lock, or a one-line refusal while DVC holds it (specimen.dvcsync.hold_lock)."""
    from specimen import SpecimenError
    from specimen.dvcsync import hold_lock

    try:
        return hold_lock(Path("."))
    except SpecimenError as e:
        print(f"specimen: {e}", file=sys.stderr)
        sys.exit(1)


def release_dvc_lock():
    while DVC_LOCK:
        DVC_LOCK.pop().unlock()


def record_in_dvc(failed=False):
    """`specimen dvc-commit` at the end of a run: dvc.lock then records what Snakemake calls current
    and no longer calls current what it would run (`dvc push` shares the rest). With --configfile or
    --config overrides too: what they changed differs from params.yaml, so it is left to run again."""
    if not Path(".dvc").is_dir():
        return
    if not PARAMS_ARE_PARAMS_YAML:
        print(
            "specimen: config overrides in use: DVC, which reads only params.yaml, records only the stages "
            "they did not change; copy the config over params.yaml (and run again) to version the rest"
        )
    try:
        shell("specimen dvc-commit")
    except Exception:  # its one line is already on stderr; the run's own status stands
        if not failed:
            raise
