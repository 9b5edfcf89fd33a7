rule prepare:
    output:
        data=f"{OUT}/data/{{benchmark}}.jsonl",
        meta=f"{OUT}/data/{{benchmark}}.meta.json",
    params:
        spec=lambda w: spec_arg(config["benchmarks"][w.benchmark]),
    log:
        f"{OUT}/logs/prepare/{{benchmark}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare/{{benchmark}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.prepare --benchmark {wildcards.benchmark} --spec {params.spec} --out {output.data} > {log} 2>&1"


rule models:
    output:
        STAGES.models_json,
    params:
        specs=lambda w: spec_arg({"generator": config["generator"], "retriever": config["retriever"]}),
    log:
        f"{STAGES.models_json}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.models --spec {params.specs} --out {output} > {log} 2>&1"
