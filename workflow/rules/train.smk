# Models: train, one job per model in train.models; tune (optional).
# A killed training job resumes at its last finished epoch from logs/train/<model>/ (not an
# output: Snakemake and DVC clear outputs before a job, and the backups must survive that).


rule train:
    input:
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        train="data/clean/train.csv",
        weights="data/clean/class_weights.json",
        code=code("train"),
    output:
        model="results/models/{model}/model.keras",
        history="results/models/{model}/history.csv",
        meta="results/models/{model}/meta.json",
        tensorboard=directory("results/models/{model}/tensorboard"),
        dvclive=directory("results/models/{model}/dvclive"),
    log:
        "logs/train/{model}.log",
    benchmark:
        "logs/benchmarks/train/{model}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    # measured at 100,000 images, 128 px, small_cnn, one epoch on two CPU cores (bench/scale.py): 7
    # minutes; 5.4 to 6.1 GB resident, most of it the shards read through memory maps (4.9 GB)
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=config["train"]["gpus"],  # the SLURM profile asks for them; locally: --resources gpu=N
    params:
        tracked=tracked("train"),  # the params its DVC stage lists
    shell:
        "specimen train {wildcards.model} --data {input.data} --index {input.index} --classes {input.classes}"
        " --train {input.train} --weights {input.weights} --out results/models/{wildcards.model} > {log} 2>&1"


# Tuning (optional, not in the default target, all): KerasTuner's Bayesian optimisation of one model's
# learning rate, head and unfrozen layers. `snakemake --cores 2 results/tune/small_cnn/best_params.yaml`.
# A killed search resumes its finished trials from logs/tune/<model>/ (not an output, as for train).


rule tune:
    input:
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        train="data/clean/train.csv",
        weights="data/clean/class_weights.json",
        code=code("tune"),
    output:
        best="results/tune/{model}/best_params.yaml",
        trials="results/tune/{model}/trials.csv",
        plot=report(
            "results/tune/{model}/trials.png",
            caption="../report/tune.rst",
            category="Tuning",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "trials"},
        ),
    log:
        "logs/tune/{model}.log",
    benchmark:
        "logs/benchmarks/tune/{model}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=config["train"]["gpus"],
    params:
        tracked=tracked("tune"),  # the params its DVC stage lists
    shell:
        "specimen tune {wildcards.model} --data {input.data} --index {input.index} --classes {input.classes}"
        " --train {input.train} --weights {input.weights} --out results/tune/{wildcards.model} > {log} 2>&1"
