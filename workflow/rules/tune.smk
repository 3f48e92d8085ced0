# Tuning (optional, not part of results/all): KerasTuner's Bayesian optimisation of one model's
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
        plot=report("results/tune/{model}/trials.png", caption="../report/tune.rst", category="Tuning", subcategory="{model}", labels={"model": "{model}", "figure": "trials"}),
    params:
        tracked=tracked("tune"),  # the params its DVC stage lists
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=config["train"]["gpus"],
    log:
        "logs/tune/{model}.log",
    benchmark:
        "logs/benchmarks/tune/{model}.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen tune {wildcards.model} --data {input.data} --index {input.index} --classes {input.classes}"
        " --train {input.train} --weights {input.weights} --out results/tune/{wildcards.model} > {log} 2>&1"
