# Autoencoder (optional, not part of results/all): a denoising convolutional autoencoder of the class
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
    params:
        tracked=tracked("autoencoder"),  # the params its DVC stage lists
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=config["train"]["gpus"],
    log:
        f"logs/autoencoder/{AE_CLASS}.log",
    benchmark:
        f"logs/benchmarks/autoencoder/{AE_CLASS}.tsv"
    conda:
        CONDA_ENV
    shell:
        f"specimen autoencoder {AE_MODEL} --data {{input.data}} --index {{input.index}}"
        f" --classes {{input.classes}} --out {AE_OUT} > {{log}} 2>&1"
