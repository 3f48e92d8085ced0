# specimen: the whole DAG. `snakemake --cores 8` (the default target, all; or `snakemake --cores 8 all`).
# Every rule calls the one `specimen` CLI with the same paths as the matching stage in dvc.yaml.
from pathlib import Path


configfile: "params.yaml"


# `snakemake --report results/workflow-report.html` (README: The report). Its first page is the run's
# headline, which the report stage writes (it includes workflow.rst); before a run, workflow.rst alone.
report: "results/report/headline.rst" if Path("results/report/headline.rst").exists() else "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
# One rule file per phase, as the package has one sub-package per phase (src/specimen/<phase>/).
include: "workflow/rules/data.smk"  # download, extract, ingest, preprocess
include: "workflow/rules/clean.smk"  # embed, clean, balance
include: "workflow/rules/train.smk"  # train; tune (optional: results/tune/<model>/ only when asked for)
include: "workflow/rules/report.smk"  # evaluate, explain, baselines, report
include: "workflow/rules/tools.smk"  # search (results/search/<target>.csv per search.targets), autoencoder (optional)


# `snakemake` alone: every artefact of the main DAG. Snakemake rebuilds a deleted file only when
# something it builds needs it: `snakemake results/report/summary.json` brings back what the summary needs, while
# this rule asks for each artefact by name, so a figure or table you deleted comes back too.
rule all:
    default_target: True
    input:
        SEARCHES,  # results/search/<target>.csv for each of search.targets (none by default)
        rules.download.output,
        rules.extract.output,
        rules.ingest.output,
        rules.preprocess.output,
        rules.embed.output,
        rules.clean.output,
        rules.balance.output,
        rules.baselines.output,
        expand(rules.train.output, model=MODELS),
        expand(rules.evaluate.output, model=MODELS),
        expand(rules.explain.output, model=MODELS),
        rules.report.output,


onstart:
    # DVC's lock, held for the whole run: a `dvc repro` started meanwhile stops at it, and this
    # run stops here (before any job) while DVC works. dvc-commit takes it over at the end.
    if Path(".dvc").is_dir():
        DVC_LOCK.append(hold_dvc_lock())


onerror:
    # What the jobs that did finish built is recorded as on success; a run that never started
    # (refused at a lock) has no DVC lock of its own and records nothing.
    if DVC_LOCK:
        release_dvc_lock()
        record_in_dvc(failed=True)


onsuccess:
    release_dvc_lock()
    record_in_dvc()
