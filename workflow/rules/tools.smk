# Tools: image search and the autoencoder, both optional (not in the default target, all).

# Image search (optional, not in the default target, all): for each of search.targets, the nearest images of
# the extracted dataset, results/search/<target>.csv (the target as written in params.yaml, .csv added:
# dvc.yaml's foreach can name a file after an item, not after part of one).
#   snakemake --cores 1 "results/search/train/3/img_0001.png.csv"     # one (a target in params.yaml or not)
#   snakemake --cores 1 search_all                                    # every one of search.targets
# A target outside the dataset is read but not tracked: rename it (or --forcerun) when it changes.

SEARCHES = expand("results/search/{target}.csv", target=config["search"]["targets"])


rule search:
    input:
        extracted="data/extracted",
        raw="data/raw",  # the listing's files are read from the archive in place
        code=code("search"),
    output:
        "results/search/{target}.csv",
    log:
        "logs/search/{target}.log",
    benchmark:
        "logs/benchmarks/search/{target}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
    params:
        tracked=tracked("search"),  # the params its DVC stage lists
    shell:
        'specimen search "{wildcards.target}" --images {input.extracted} --out "{output}" > "{log}" 2>&1'


rule search_all:
    input:
        SEARCHES,


# Autoencoder (optional, not in the default target, all): a denoising convolutional autoencoder of the class
# autoencoder.class, its generated images scored by the first model of train.models.
#   snakemake --cores 2 results/autoencoder/0/metrics.json        # the class in params.yaml (demo: 0)
# The same command, inputs and outputs as the stage in autoencoder/dvc.yaml.

AE_CLASS = str(config["autoencoder"]["class"])  # a name: null (the first class) is for the CLI alone
AE_MODEL = f"results/models/{MODELS[0]}"
AE_OUT = f"results/autoencoder/{AE_CLASS}"


rule autoencoder:
    input:
        model=f"{AE_MODEL}/model.keras",
        meta=f"{AE_MODEL}/meta.json",
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        code=code("autoencoder"),
    output:
        model=f"{AE_OUT}/autoencoder.keras",
        reconstructions=f"{AE_OUT}/reconstructions.png",
        generated=f"{AE_OUT}/generated.png",
        metrics=f"{AE_OUT}/metrics.json",
    log:
        f"logs/autoencoder/{AE_CLASS}.log",
    benchmark:
        f"logs/benchmarks/autoencoder/{AE_CLASS}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=config["train"]["gpus"],
    params:
        tracked=tracked("autoencoder"),  # the params its DVC stage lists
    shell:
        f"specimen autoencoder {AE_MODEL} --data {{input.data}} --index {{input.index}}"
        f" --classes {{input.classes}} --out {AE_OUT} > {{log}} 2>&1"
