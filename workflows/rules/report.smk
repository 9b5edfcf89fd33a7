rule report:
    input:
        rows=[f"{OUT}/scores/{b}/{m}/k{k}.json" for b, m, k in RUNS],
    output:
        csv=report(f"{OUT}/results.csv", caption="../report/results.rst", category="Tables"),
        md=f"{OUT}/results.md",
        timings=report(f"{OUT}/timings.csv", caption="../report/timings.rst", category="Timings"),
        timings_md=f"{OUT}/timings.md",
        environment=f"{OUT}/environment.json",
        plots=report(
            expand(f"{OUT}/plots/{{benchmark}}.{{ext}}", benchmark=sorted(config["benchmarks"]), ext=["png", "svg"]),
            caption="../report/plot.rst",
            category="Accuracy vs generator tokens",
        ),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        x=config["report"]["x"],
        y=config["report"]["y"],
        jobs=STAGES.timed_jobs(),
    threads: 2
    log:
        f"{OUT}/logs/report.log",
    conda:
        "../../environment.yml"
    shell:
        "(python -m lmem.worker lmem.report --rows {input.rows} --out-dir {params.out_dir}"
        " --x {params.x} --y {params.y} &&"
        " python -m lmem.worker lmem.timings --benchmarks {params.out_dir}/benchmarks --jobs {params.jobs}"
        " --out-dir {params.out_dir} &&"
        " python -m lmem.worker lmem.numerics --out {output.environment} --threads {threads}) > {log} 2>&1"
