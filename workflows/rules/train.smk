# Trained work goes to <work_dir>/<kind>/<id>/ (id: a hash of spec, data, models and the stage's code,
# lmem/work.py). Each stage trains in <work_dir>/partial/<kind>/<id>/ and --publish moves what it made (not its
# resume checkpoint last/) into the finished folder when it completes.


rule train_compressor:
    input:
        unpack(compressor_inputs),
    output:
        best=f"{WORK}/compressors/{{cid}}/best/compressor.safetensors",
        init=f"{WORK}/compressors/{{cid}}/init/compressor.safetensors",
        log_csv=f"{WORK}/compressors/{{cid}}/train_log.csv",
    params:
        memory=memory_file(BENCH["train"]),
        spec=lambda w: spec_arg(STAGES.train_spec(entry(w)[1])),
        partial=partial_dir,
        seeded=lambda w: STAGES.seeded(*entry(w)),
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.best)),
    threads: 2
    log:
        f"{WORK}/logs/train/{{cid}}.log",
    benchmark:
        BENCH["train"]
    conda:
        "../../environment.yml"
    shell:
        "{params.seeded}python -m lmem.worker --memory {params.memory} lmem.train_compressor"
        " --spec {params.spec} --out {params.partial} --publish {params.out_dir}"
        " --threads {threads} > {log} 2>&1"


rule train_xrag:
    input:
        models=STAGES.models_json,
        data=train_data_files,
    output:
        projector=f"{WORK}/projectors/{{pid}}/projector.safetensors",
        log_csv=f"{WORK}/projectors/{{pid}}/train_log.csv",
    params:
        memory=memory_file(BENCH["train_xrag"]),
        spec=lambda w: spec_arg(STAGES.xrag_spec(entry(w)[1])),
        partial=partial_dir,
        seeded=lambda w: STAGES.seeded(*entry(w)),
        out_dir=lambda w, output: os.path.dirname(output.projector),
    threads: 2
    log:
        f"{WORK}/logs/train_xrag/{{pid}}.log",
    benchmark:
        BENCH["train_xrag"]
    conda:
        "../../environment.yml"
    shell:
        "{params.seeded}python -m lmem.worker --memory {params.memory} lmem.train_xrag"
        " --spec {params.spec} --out {params.partial} --publish {params.out_dir}"
        " --threads {threads} > {log} 2>&1"


rule train_vision:
    input:
        models=STAGES.models_json,
        data=train_data_files,
    output:
        projector=f"{WORK}/vision/{{vid}}/projector.safetensors",
        log_csv=f"{WORK}/vision/{{vid}}/train_log.csv",
    params:
        memory=memory_file(BENCH["train_vision"]),
        spec=lambda w: spec_arg(STAGES.vision_spec(entry(w)[1])),
        partial=partial_dir,
        seeded=lambda w: STAGES.seeded(*entry(w)),
        out_dir=lambda w, output: os.path.dirname(output.projector),
    threads: 2
    log:
        f"{WORK}/logs/train_vision/{{vid}}.log",
    benchmark:
        BENCH["train_vision"]
    conda:
        "../../environment.yml"
    shell:
        "{params.seeded}python -m lmem.worker --memory {params.memory} lmem.train_vision"
        " --spec {params.spec} --out {params.partial} --publish {params.out_dir}"
        " --threads {threads} > {log} 2>&1"
