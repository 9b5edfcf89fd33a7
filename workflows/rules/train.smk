rule train_compressor:
    input:
        unpack(compressor_inputs),
    output:
        best=f"{OUT}/compressors/{{compressor}}/best/compressor.safetensors",
        init=f"{OUT}/compressors/{{compressor}}/init/compressor.safetensors",
        log_csv=f"{OUT}/compressors/{{compressor}}/train_log.csv",
    params:
        spec=lambda w: spec_arg(STAGES.train_spec(w.compressor)),
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.best)),
    threads: 2
    log:
        f"{OUT}/logs/train/{{compressor}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{compressor}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.train_compressor --spec {params.spec} --out {params.out_dir} --threads {threads} > {log} 2>&1"


rule train_xrag:
    input:
        models=f"{OUT}/models.json",
        data=train_data_files,
    output:
        projector=f"{OUT}/projectors/{{projector}}/projector.safetensors",
        log_csv=f"{OUT}/projectors/{{projector}}/train_log.csv",
    params:
        spec=lambda w: spec_arg(STAGES.xrag_spec(w.projector)),
        out_dir=lambda w, output: os.path.dirname(output.projector),
    threads: 2
    log:
        f"{OUT}/logs/train_xrag/{{projector}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_xrag/{{projector}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.train_xrag --spec {params.spec} --out {params.out_dir} --threads {threads} > {log} 2>&1"


rule train_vision:
    input:
        models=f"{OUT}/models.json",
        data=train_data_files,
    output:
        projector=f"{OUT}/vision/{{vision}}/projector.safetensors",
        log_csv=f"{OUT}/vision/{{vision}}/train_log.csv",
    params:
        spec=lambda w: spec_arg(STAGES.vision_spec(w.vision)),
        out_dir=lambda w, output: os.path.dirname(output.projector),
    threads: 2
    log:
        f"{OUT}/logs/train_vision/{{vision}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_vision/{{vision}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.train_vision --spec {params.spec} --out {params.out_dir} --threads {threads} > {log} 2>&1"
