# Models: train and evaluate, one job per model in train.models.


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
    params:
        train=config["train"],
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
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
