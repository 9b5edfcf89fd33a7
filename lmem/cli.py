"""The `lmem` command: each subcommand is one stage entry point (also `python -m lmem.<stage>`)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "prepare": ("lmem.prepare", "prepare one benchmark's examples"),
    "models": ("lmem.models", "resolve/convert the run's models and record their hashes"),
    "train": ("lmem.train_compressor", "train a Latent Memory compressor"),
    "train-xrag": ("lmem.train_xrag", "train the xRAG baseline's projector"),
    "train-vision": ("lmem.train_vision", "train a composed VLM's image projector (image encoder -> generator tokens)"),
    "index": ("lmem.index", "build a latent index of a benchmark's evidence"),
    "run": ("lmem.run", "run one method on one benchmark at one k"),
    "score": ("lmem.score", "score one predictions file"),
    "report": ("lmem.report", "write the results table and plots"),
    "compare": ("lmem.compare", "paired bootstrap difference of two runs' per-question scores"),
    "regress": ("lmem.regress", "compare a results table with its reference; non-zero exit on drift"),
    "numerics": ("lmem.numerics", "this machine's float-arithmetic fingerprint, CPU, kernels and packages"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: lmem <command> [options]\n\ncommands:\n" + "\n".join(lines) +
              "\n\nThe whole pipeline: snakemake --workflow-profile workflows/profiles/default "
              "--configfile config/demo.yaml")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    main()
