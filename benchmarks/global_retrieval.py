"""lmem's standard BM25 and dense top-5 over one global corpus, on the work FlashRAG was measured on (issue 15):

the first 100 HotpotQA questions of ../shared/data/hotpotqa/test500.jsonl, searching the one-sentence corpus of all
500 questions' paragraphs; SmolLM2-135M-Instruct, greedy, 32 new tokens, the paper prompt; all-MiniLM-L6-v2 mean
pooling and FAISS flat for dense, bm25s (k1 1.5, b 0.75) for BM25; top-5. Prints, per method: F1 (HotpotQA's
official rule), answer in top-5 (a retrieved sentence holds a reference answer), gold sentences in top-5 (recall),
prompt tokens per question (tokens_full), the seconds to answer the 100 questions and the seconds to build the
index. A benchmark, not a test: it prints figures.

    python benchmarks/global_retrieval.py                      # the comparison settings: float32, batch 4
    python benchmarks/global_retrieval.py --batch-size 16 --format fewshot --stop '\n'   # lmem's CPU defaults
"""

from __future__ import annotations

import argparse
import time

import torch

from lmem import baselines
from lmem.config import validate_config
from lmem.corpus import Corpus, flat_search
from lmem.data import contains_answer, load_examples
from lmem.encoders import DenseEncoder
from lmem.generator import Generator
from lmem.metrics.qa import mean_f1


def answer(method, examples, ranked, generator, k):
    t0 = time.time()
    prompts = method.prompts(examples, ranked, generator)
    answers = generator.generate(prompts, desc=method.label)
    seconds = time.time() - t0
    preds = [baselines.make_prediction(ex, method.label, k, a, [e.id for e in ev], p)
             for ex, ev, p, a in zip(examples, ranked, prompts, answers)]
    return preds, seconds


def report(name, examples, ranked, preds, seconds, build_seconds):
    f1 = mean_f1([p.prediction for p in preds], [ex.answers for ex in examples], "hotpotqa")
    has_answer = sum(any(contains_answer(e.text, ex.answers) for e in ev) for ex, ev in zip(examples, ranked))
    recall = [len({e.id for e in ev if e.gold}) / len(ex.gold_ids) for ex, ev in zip(examples, ranked) if ex.gold_ids]
    tokens = sum(p.tokens_full for p in preds) / len(preds)
    print(f"| {name} | {f1:.1f} | {has_answer / len(examples):.2f} | "
          f"{(sum(recall) / len(recall)) if recall and ranked[0] else float('nan'):.2f} | {tokens:.0f} | "
          f"{seconds:.1f} | {build_seconds:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/hotpotqa/test500.jsonl")
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--format", choices=["paper", "fewshot"], default="paper", help="prompt.format")
    ap.add_argument("--stop", action="append", default=[], help="a stop string (generator.stop); none: EOS only")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    args.stop = [s.encode().decode("unicode_escape") for s in args.stop]
    torch.set_num_threads(args.threads)
    config = validate_config({"name": "global", "benchmarks": {"hotpotqa": {"loader": "hotpotqa",
                              "source": {"path": args.data}}}, "methods": {"dense": {}},
                              "generator": {"batch_size": args.batch_size, "dtype": args.dtype,
                                            "max_new_tokens": 32, "stop": args.stop},
                              "prompt": {"format": args.format}})
    t0 = time.time()
    everything = load_examples("hotpotqa", config["benchmarks"]["hotpotqa"]).examples
    examples = everything[:args.questions]
    corpus = Corpus.build(everything)
    print(f"{len(everything)} questions loaded in {time.time() - t0:.1f}s; corpus: {len(corpus.items)} distinct "
          f"sentences ({sum(len(r) for r in corpus.pool_rows)} in pools); answering the first {len(examples)}; "
          f"generator {config['generator']['model']} {args.dtype}, batch {args.batch_size}, greedy, 32 new tokens, "
          f"prompt {args.format}, stop {args.stop or 'EOS only'}")
    t0 = time.time()
    generator = Generator(config["generator"])
    print(f"generator loaded in {time.time() - t0:.1f}s\n")
    print(f"| method | F1 | answer in top-{args.k} | gold in top-{args.k} | prompt tokens | answer s | index s |")
    print("|---|---|---|---|---|---|---|")

    closed = baselines.get("closed_book")({}, config, label="closed_book")
    ranked = [[] for _ in examples]
    preds, seconds = answer(closed, examples, ranked, generator, None)
    report("no retrieval", examples, ranked, preds, seconds, 0.0)

    t0 = time.time()
    bm25 = baselines.get("bm25")({"retrieval": "global"}, config, label="bm25_global")
    index = bm25._index([bm25._text(e) for e in corpus.items])
    build = time.time() - t0
    t1 = time.time()
    ranked = [corpus.view(everything, i, bm25._top(index, len(corpus.items), ex.question, args.k))
              for i, ex in enumerate(examples)]
    search = time.time() - t1
    preds, seconds = answer(bm25, examples, ranked, generator, args.k)
    report(f"BM25 top-{args.k} (bm25s)", examples, ranked, preds, seconds + search, build)

    t0 = time.time()
    encoder = DenseEncoder(config["retriever"]["model"], config["retriever"])
    emb = encoder.encode(corpus.texts)
    build = time.time() - t0
    t1 = time.time()
    rows = flat_search(emb.numpy(), encoder.encode_queries([ex.question for ex in examples]).numpy(), args.k)
    ranked = [corpus.view(everything, i, r) for i, r in enumerate(rows)]
    search = time.time() - t1
    dense = baselines.get("dense")({"retrieval": "global"}, config, label="dense_global")
    preds, seconds = answer(dense, examples, ranked, generator, args.k)
    report(f"dense top-{args.k} (MiniLM, FAISS flat)", examples, ranked, preds, seconds + search, build)
    print("\nanswer s: prompts, generation and (dense) query encoding + search for the questions; index s: BM25 "
          "indexing or encoding the corpus. FlashRAG 0.1.2 on this machine kind (fp32, batch 4), from the issue: "
          "dense F1 8.2, answer in top-5 0.58, gold 0.52, 299 prompt tokens, 76.9 s + 117.9 s index; BM25 F1 6.6; "
          "no retrieval 5.9.")


if __name__ == "__main__":
    main()
