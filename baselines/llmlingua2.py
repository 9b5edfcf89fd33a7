"""LLMLingua-2 (Pan et al., 2024): a token classifier keeps the most informative words of the full context, at a
target rate (paper: 0.2, 0.1 and 0.05 with microsoft/llmlingua-2-xlm-roberta-large-meetingbank), through the
`llmlingua` package. The generator reads the compressed text as one context; tokens are counted from what it
receives, like every other method.

Config (one entry per rate, e.g. `llmlingua2_r10: {class: llmlingua2, rate: 0.1}`): `rate`, `model` (a hub id or
a local folder of any token-classification model; llmlingua picks its word-merging rule from the name, so a local
folder's name should contain `xlm-roberta-large` or `bert-base-multilingual-cased`), `force_tokens` (kept always).
Where the model (or llmlingua's tiktoken encoding) is not available, as offline, the run is recorded as skipped
with the reason, and the rest of the DAG goes on.
"""

from lmem.baselines import Baseline, MethodUnavailable, make_prediction
from lmem.prompts import encode_with_evidence
from lmem.records import Evidence



def load_prompt_compressor(model: str):
    """llmlingua's PromptCompressor in LLMLingua-2 mode, or MethodUnavailable saying what is missing."""
    from lmem.models import ModelNotFound, resolve
    from lmem.stage import device

    try:
        resolved = resolve(model, prefer="hub")
    except ModelNotFound as e:
        raise MethodUnavailable(f"LLMLingua-2 model unavailable: {e}") from e
    try:
        import tiktoken

        tiktoken.encoding_for_model("gpt-3.5-turbo")  # llmlingua counts words in GPT tokens; fetched once, cached
    except Exception as e:
        raise MethodUnavailable(
            f"llmlingua needs tiktoken's cl100k_base encoding, which could not be loaded ({type(e).__name__}: {e}); "
            "run once with network access or put the file in TIKTOKEN_CACHE_DIR") from e
    try:
        from llmlingua import PromptCompressor
    except ImportError as e:
        raise MethodUnavailable("the `llmlingua` package is not installed (pip install llmlingua)") from e
    return resolved, PromptCompressor(model_name=str(resolved.path), use_llmlingua2=True, device_map=str(device()))


class LLMLingua2(Baseline):
    name = "llmlingua2"
    uses_k = False
    options = {
        "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.1,
                 "description": "the share of context tokens kept"},
        "model": {"type": "string", "default": "microsoft/llmlingua-2-xlm-roberta-large-meetingbank",
                  "description": "the paper's LLMLingua-2 model"},
        "force_tokens": {"type": "array", "items": {"type": "string"}, "default": ["\n", "?", "."],
                         "description": "tokens always kept"},
    }

    def run(self, examples, generator, k):
        rate = float(self.option("rate"))
        if not 0 < rate <= 1:
            raise ValueError(f"{self.label}: rate must be in (0, 1], got {rate}")
        resolved, compressor = load_prompt_compressor(self.option("model"))
        self.models = {"llmlingua2": resolved.tag}
        force = list(self.option("force_tokens"))
        prompts, texts = [], []
        for ex in examples:
            text = ""
            if ex.pool:
                out = compressor.compress_prompt_llmlingua2([e.text for e in ex.pool], rate=rate,
                                                            force_tokens=force, drop_consecutive=True)
                text = out["compressed_prompt"].strip()
            evidence = [Evidence(id="llmlingua2", text=text)] if text else []
            texts.append(text)
            prompts.append(encode_with_evidence(generator.tokenizer, ex.question, evidence, self.config["prompt"],
                                                generator.max_input_tokens))
        answers = generator.generate(prompts, desc=f"{self.label} rate={rate}")
        self.bytes_per_item = None  # nothing stored: compression runs per question, on the raw text
        return [make_prediction(ex, self.label, None, a, [e.id for e in ex.pool], p)
                for ex, a, p in zip(examples, answers, prompts)]
