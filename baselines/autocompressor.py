"""AutoCompressor (Chevalier et al., 2023): the full context is compressed segment by segment (paper: 512-token
segments) into summary vectors that the same model then reads as a soft prompt before the question. The paper's
model is `princeton-nlp/AutoCompressor-Llama-2-7b-6k`; it is its own generator (the run's generator is not used).

Its model class is not in transformers: it comes from the authors' repository (github.com/princeton-nlp/
AutoCompressors: `auto_compressor.py` and `modeling_flash_llama.py`, which needs flash-attn and a CUDA GPU) on the
PYTHONPATH. Where that module or the model is unavailable (always offline and on CPU), the run is recorded as
skipped with the reason. Tokens: the generator reads `n_segments x summary_length` soft-prompt positions (counted
as context) plus the question prompt.

Config: `model` (default the paper's), `segment_length` (512), `summary_length` (the model's, 50)."""

from lmem.baselines import Baseline, MethodUnavailable, make_prediction
from lmem.prompts import encode_with_evidence



class AutoCompressor(Baseline):
    name = "autocompressor"
    uses_k = False
    options = {
        "model": {"type": "string", "default": "princeton-nlp/AutoCompressor-Llama-2-7b-6k"},
        "segment_length": {"type": "integer", "minimum": 1, "default": 512, "description": "tokens per segment"},
        "summary_length": {"type": ["integer", "null"], "minimum": 1, "default": None,
                           "description": "summary vectors per segment (default: the model's)"},
    }

    def load(self):
        import torch

        from lmem.models import ModelNotFound, resolve
        from lmem.stage import device

        try:
            from auto_compressor import LlamaAutoCompressorModel
        except ImportError as e:
            raise MethodUnavailable(
                "AutoCompressor's model code is not importable (`auto_compressor`, from github.com/princeton-nlp/"
                f"AutoCompressors, with flash-attn on a CUDA GPU): {e}") from e
        try:
            resolved = resolve(self.option("model"), prefer="hub")
        except ModelNotFound as e:
            raise MethodUnavailable(f"AutoCompressor model unavailable: {e}") from e
        from transformers import AutoTokenizer

        model = LlamaAutoCompressorModel.from_pretrained(str(resolved.path), torch_dtype=torch.bfloat16)
        return resolved, AutoTokenizer.from_pretrained(str(resolved.path)), model.eval().to(device())

    def run(self, examples, generator, k):
        import torch

        resolved, tok, model = self.load()
        self.models = {"autocompressor": resolved.tag}
        seg = int(self.option("segment_length"))
        if self.option("summary_length") is not None:
            model.config.summary_length = int(self.option("summary_length"))
        answers, prompts = [], []
        for ex in examples:
            prompt = encode_with_evidence(tok, ex.question, [], self.config["prompt"], 10**9)
            ids = torch.tensor([prompt.input_ids], device=model.device)
            soft = None
            with torch.no_grad():
                if ex.pool:
                    ctx = tok("\n".join(e.text for e in ex.pool), add_special_tokens=False,
                              return_tensors="pt").input_ids.to(model.device)
                    n = ctx.shape[1]
                    soft = model(ctx, segment_lengths=[seg] * (n // seg) + ([n % seg] if n % seg else []),
                                 output_softprompt=True).softprompt
                out = model.generate(ids, softprompt=soft, do_sample=False,
                                     max_new_tokens=self.config["generator"]["max_new_tokens"])
            n_soft = 0 if soft is None else int(soft.shape[1])
            answers.append(tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True).strip().split("\n")[0])
            prompt.tokens_full += n_soft
            prompt.tokens_no_system += n_soft
            prompt.tokens_context += n_soft
            prompts.append(prompt)
        return [make_prediction(ex, self.label, None, a, [e.id for e in ex.pool], p)
                for ex, a, p in zip(examples, answers, prompts)]
