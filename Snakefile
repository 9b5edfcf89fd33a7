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


rule all:
    input:
        rules.report.output,
    default_target: True
