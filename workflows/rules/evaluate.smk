rule run_method:
    input:
        unpack(run_inputs),
    output:
        predictions=f"{OUT}/predictions/{{benchmark}}/{{method}}/k{{k}}.jsonl",
        meta=f"{OUT}/predictions/{{benchmark}}/{{method}}/k{{k}}.meta.json",
    params:
        memory=memory_file(BENCH["run"]),
        spec=lambda w: spec_arg(STAGES.run_spec(w.method, w.benchmark)),
    threads: 2
    log:
        f"{OUT}/logs/run/{{benchmark}}/{{method}}/k{{k}}.log",
    benchmark:
        BENCH["run"]
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.worker --memory {params.memory} lmem.run"
        " --data {input.data} --spec {params.spec} --k {wildcards.k}"
        " --out {output.predictions} --threads {threads} > {log} 2>&1"


rule score:
    input:
        predictions=f"{OUT}/predictions/{{benchmark}}/{{method}}/k{{k}}.jsonl",
        data=f"{OUT}/data/{{benchmark}}.jsonl",
    output:
        row=f"{OUT}/scores/{{benchmark}}/{{method}}/k{{k}}.json",
        questions=f"{OUT}/scores/{{benchmark}}/{{method}}/k{{k}}.questions.jsonl",
    params:
        bootstrap=config["metrics"]["bootstrap_samples"],
        seed=config["seed"],
    log:
        f"{OUT}/logs/score/{{benchmark}}/{{method}}/k{{k}}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.worker lmem.score --predictions {input.predictions} --data {input.data} --out {output.row}"
        " --bootstrap {params.bootstrap} --seed {params.seed} > {log} 2>&1"
