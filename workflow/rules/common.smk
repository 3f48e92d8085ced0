# Helpers and validation shared by the rules.
from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, "../schemas/params.schema.yaml")

MODELS = config["train"]["models"]
FEATURES = f"data/features/{config['embed']['extractor']}.npz"
CONDA_ENV = "../../envs/specimen.yaml"


wildcard_constraints:
    model="|".join(MODELS),


def code(*modules):
    """The library modules a stage runs: a change to them re-runs the stage (as in dvc.yaml)."""
    return [f"src/specimen/{m}.py" for m in modules]
