# specimen: the whole DAG. `snakemake --cores 8 results/all` (or just `snakemake --cores 8`).
# Every rule calls the one `specimen` CLI with the same paths as the matching stage in dvc.yaml.
from pathlib import Path


configfile: "params.yaml"


report: "workflow/report/workflow.rst"  # `snakemake --report results/report.html` (README: The report)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/tune.smk"  # optional: results/tune/<model>/ only when asked for
include: "workflow/rules/autoencoder.smk"  # optional: results/autoencoder/<class>/ only when asked for
include: "workflow/rules/search.smk"  # optional: results/search/<target>.csv for each of search.targets


rule all:
    input:
        "results/all",
        SEARCHES,  # results/search/<target>.csv for each of search.targets (none by default)
    default_target: True


onstart:
    # DVC's lock, held for the whole run: a `dvc repro` started meanwhile stops at it, and this
    # run stops here (before any job) while DVC works. dvc-commit takes it over at the end.
    if Path(".dvc").is_dir():
        DVC_LOCK.append(hold_dvc_lock())


onerror:
    release_dvc_lock()


onsuccess:
    release_dvc_lock()
    # Record what Snakemake built in dvc.lock and the DVC cache: `dvc status` is then clean and
    # `dvc push` shares the artefacts. Not after a run with --configfile/--config overrides: DVC
    # knows only params.yaml, and would record values the artefacts were not built with.
    if Path(".dvc").is_dir() and PARAMS_ARE_PARAMS_YAML:
        shell("specimen dvc-commit")
    elif Path(".dvc").is_dir():
        print("specimen: config overrides in use, so DVC does not record this run; "
              "copy the config over params.yaml (and run again) to version it with DVC")
