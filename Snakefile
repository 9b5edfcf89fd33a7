# lmem: the Latent Memory benchmark DAG. Rules live in workflows/rules/, logic in lmem/.
# Run:  snakemake --workflow-profile workflows/profiles/default --configfile config/<profile>.yaml
from snakemake.utils import min_version

min_version("9.0")


if not config:  # no --configfile given: the embedded default (a --configfile would be merged into it)

    configfile: "config/demo.yaml"


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/index.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/report.smk"


# Local runs: one fork server imports torch and transformers once and runs each stage's job in a child of its own
# (lmem/worker.py; `worker: false` turns it off). Remote executors (SLURM) never use it: each job runs as it is.
WORKER = []


onstart:
    if config["worker"] and workflow.local_exec:
        from lmem.worker import Server

        WORKER.append(Server(f"{OUT}/logs/worker.log"))


onsuccess:
    for server in WORKER:
        server.stop()


onerror:
    for server in WORKER:
        server.stop()


rule all:
    input:
        rules.report.output,
    default_target: True
