# Helpers and validation shared by the rules.
import sys

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


def search_settings(config):
    """What a search's result depends on: network features also on image.* and embed.*."""
    s = config["search"]
    networks = {"image": config["image"], "embed": config["embed"]} if s["features"] != "histogram" else {}
    return {"n": s["n"], "features": s["features"], **networks}


def code(*modules):
    """The library modules a stage runs: a change to them re-runs the stage (as in dvc.yaml)."""
    return [f"src/specimen/{m}.py" for m in modules]


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
    shell.prefix(f"export SPECIMEN_PARAMS={path}; ")
    own = yaml.safe_load(Path("params.yaml").read_text())
    validate(own, "../schemas/params.schema.yaml")
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
