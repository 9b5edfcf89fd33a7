rule build_latent_index:
    input:
        checkpoint=lambda w: STAGES.index_checkpoint(w.compressor, w.stage),
        data=f"{OUT}/data/{{benchmark}}.jsonl",
    output:
        meta=f"{OUT}/latent_index/{{compressor}}-{{stage}}/{{benchmark}}/meta.json",
    params:
        memory=memory_file(BENCH["index"]),
        spec=lambda w: spec_arg(STAGES.index_spec(w.compressor, w.benchmark)),
        checkpoint_dir=lambda w, input: os.path.dirname(input.checkpoint),
        out_dir=lambda w, output: os.path.dirname(output.meta),
    threads: 2
    log:
        f"{OUT}/logs/index/{{compressor}}-{{stage}}/{{benchmark}}.log",
    benchmark:
        BENCH["index"]
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.worker --memory {params.memory} lmem.index"
        " --checkpoint {params.checkpoint_dir} --data {input.data} --out {params.out_dir}"
        " --spec {params.spec} --threads {threads} > {log} 2>&1"


rule embed_corpus:
    input:
        data=f"{OUT}/data/{{benchmark}}.jsonl",
        models=STAGES.models_json,
    output:
        embeddings=f"{OUT}/embeddings/{{benchmark}}/retriever.safetensors",
        meta=f"{OUT}/embeddings/{{benchmark}}/retriever.safetensors.meta.json",
    params:
        memory=memory_file(BENCH["embed"]),
        spec=lambda w: spec_arg(config["retriever"]),
    threads: 2
    log:
        f"{OUT}/logs/embed/{{benchmark}}.log",
    benchmark:
        BENCH["embed"]
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.worker --memory {params.memory} lmem.corpus"
        " --data {input.data} --spec {params.spec} --out {output.embeddings}"
        " --threads {threads} > {log} 2>&1"
