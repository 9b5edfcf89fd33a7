rule build_latent_index:
    input:
        checkpoint=f"{OUT}/compressors/{{compressor}}/{{stage}}/compressor.safetensors",
        data=f"{OUT}/data/{{benchmark}}.jsonl",
    output:
        meta=f"{OUT}/latent_index/{{compressor}}-{{stage}}/{{benchmark}}/meta.json",
    params:
        spec=lambda w: spec_arg(index_spec(w.compressor, w.benchmark)),
        checkpoint_dir=lambda w, input: os.path.dirname(input.checkpoint),
        out_dir=lambda w, output: os.path.dirname(output.meta),
    threads: 2
    log:
        f"{OUT}/logs/index/{{compressor}}-{{stage}}/{{benchmark}}.log",
    benchmark:
        f"{OUT}/benchmarks/index/{{compressor}}-{{stage}}/{{benchmark}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m lmem.index --checkpoint {params.checkpoint_dir} --data {input.data} --out {params.out_dir}"
        " --spec {params.spec} --threads {threads} > {log} 2>&1"
