# Models: train and evaluate, one job per model in train.models.
# A killed training job resumes at its last finished epoch from logs/train/<model>/ (not an
# output: Snakemake and DVC clear outputs before a job, and the backups must survive that).


rule train:
    input:
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        train="data/clean/train.csv",
        weights="data/clean/class_weights.json",
        code=code("train", "models", "backbones", "data"),
    output:
        model="results/models/{model}/model.keras",
        history="results/models/{model}/history.csv",
        meta="results/models/{model}/meta.json",
        tensorboard=directory("results/models/{model}/tensorboard"),
        dvclive=directory("results/models/{model}/dvclive"),
    params:
        train=config["train"],
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=config["train"]["gpus"],  # the SLURM profile asks for them; locally: --resources gpu=N
    log:
        "logs/train/{model}.log",
    benchmark:
        "logs/benchmarks/train/{model}.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen train {wildcards.model} --data {input.data} --index {input.index} --classes {input.classes}"
        " --train {input.train} --weights {input.weights} --out results/models/{wildcards.model} > {log} 2>&1"


rule evaluate:
    input:
        model="results/models/{model}/model.keras",
        history="results/models/{model}/history.csv",
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        code=code("evaluate", "models", "backbones", "data"),
    output:
        metrics="results/reports/{model}/metrics.json",
        report_txt="results/reports/{model}/classification_report.txt",
        report_json="results/reports/{model}/classification_report.json",
        confusion="results/reports/{model}/confusion_matrix.png",
        curves="results/reports/{model}/curves.png",
        predictions="results/reports/{model}/predictions.csv",
    params:
        evaluate=config["evaluate"],
    resources:
        mem_mb=2000,
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen evaluate results/models/{wildcards.model} --data {input.data} --index {input.index}"
        " --classes {input.classes} --out results/reports/{wildcards.model} > {log} 2>&1"
