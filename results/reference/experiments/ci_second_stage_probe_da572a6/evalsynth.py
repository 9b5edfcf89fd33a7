"""Evaluate compressor checkpoints (argv) on the ci synth test slice (100) and HotpotQA test50 via Trainer.validate."""
import sys, logging
from pathlib import Path
from lmem.config import load_config
from lmem.specs import Stages
from lmem.training import load_split
from lmem.stage import setup
from lmem.train_compressor import Trainer
setup(2)
cfg = load_config("/work/main/config/ci.yaml")
spec = Stages(dict(cfg, results_dir="/tmp/probe/e/r")).train_spec(sys.argv[1])
spec["train_data"] = [dict(spec["train_data"][0], limit=8)] if isinstance(spec["train_data"], list) else dict(spec["train_data"], limit=8)
spec["train"] = dict(spec["train"], val_questions=100)
vals = {"synth": {"loader": "hotpotqa", "source": {"synth": {"seed": 0, "split": "test", "n_train": 2000, "n_dev": 200, "n_test": 100, "single_fraction": 0.5}}},
        "hotpot": {"loader": "hotpotqa", "source": {"path": "/work/shared/data/hotpotqa/test500.jsonl"}, "limit": 50}}
tr = Trainer(spec, "/tmp/probe/e/w", load_split(spec["train_data"], "train"), [])
for name, v in [(n, v) for n, v in vals.items() if n in (__import__("os").environ.get("ONLY") or "synth hotpot").split()]:
    tr.val = [ex for ex in load_split(v, "val") if ex.pool][:100]
    for ck in sys.argv[2:]:
        tr.compressor.load_trainable(ck)
        print(name, ck, tr.validate(), flush=True)
