"""Probe: stage 2 on HotpotQA train300 from the ci reference's best compressor; validation on the ci HotpotQA
test slice (50) to measure, not to select."""
import json, sys, time, logging
from pathlib import Path
import torch
from lmem.config import load_config
from lmem.specs import Stages
from lmem.training import load_split
from lmem.stage import setup
from lmem.train_compressor import Trainer

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
args = json.loads(sys.argv[1])
out = Path(args.pop("out"))
setup(2)
cfg = load_config("/work/main/config/ci.yaml")
st = Stages(dict(cfg, results_dir=str(out / "r")))
spec = st.train_spec("smollm2")
H = "/work/shared/data/hotpotqa/"
spec["train_data"] = [{"loader": "hotpotqa", "source": {"path": H + "train300.jsonl"}, "limit": args.pop("n_train", 250)}]
spec["train_data"] += args.pop("extra_train", [])
spec["val_data"] = {"loader": "hotpotqa", "source": {"path": H + "test500.jsonl"}, "limit": 50}
spec["train"].update(dict(val_questions=50), **args)
print(json.dumps(spec["train"]), flush=True)
t0 = time.time()
tr = Trainer(spec, out / "w", load_split(spec["train_data"], "train"), load_split(spec["val_data"], "val"))
print("setup", round(time.time() - t0), "s", len(tr.items), "items", flush=True)
tr.compressor.load_trainable("/work/main/results/reference/ci/work/compressors/3d84c9a0888fa342/best")
tr._fit_latent_stats = lambda: None
print("stage-1 best on hotpot test50:", tr.validate(), flush=True)
tr.train()
print((out / "w" / "val_log.csv").read_text())
