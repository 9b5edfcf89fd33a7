"""The one prompt builder: every method's generator input is built here, and its tokens are counted here.

A prompt is the chat template (or a plain template when the tokenizer has none) around the docs/method.md section 4
system prompt, an optional worked example (prompt.format = fewshot, identical for every method) and the final user
turn `Context 1: ...\\nContext 2: ...\\nQuestion: ...`. Token counts come from the generator's own input ids
(docs/method.md section 5): tokens_full is everything; tokens_no_system runs from the final turn's first context marker
(the question, when there is no context) to the end; tokens_context from that marker up to the question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lmem.io import InputError
from lmem.records import Evidence

PLAIN_TEMPLATE_ANSWER = "Answer:"


@dataclass
class EncodedPrompt:
    input_ids: list[int]
    tokens_full: int
    tokens_no_system: int
    tokens_context: int
    kept: list[Evidence] = field(default_factory=list)  # evidence in the prompt, in prompt order
    n_dropped: int = 0


def user_turn(contexts: list[str], question: str, prompt_cfg: dict) -> tuple[str, int]:
    """The final user turn and the character offset of its question label."""
    body = "".join(prompt_cfg["context_label"].format(i=i + 1) + c + "\n" for i, c in enumerate(contexts))
    return body + prompt_cfg["question_label"] + question, len(body)


def render(tokenizer, contexts: list[str], question: str, prompt_cfg: dict,
           context_label: str | None = None) -> tuple[str, int, int]:
    """Render the full prompt text; returns (text, char offset of the final user turn, of its question label).
    `context_label` overrides the label of the final turn's contexts only (latents use `Latent context i: `)."""
    final_cfg = dict(prompt_cfg, context_label=context_label) if context_label else prompt_cfg
    final, q_off = user_turn(contexts, question, final_cfg)
    turns = []
    if prompt_cfg["format"] == "fewshot":
        demo = prompt_cfg["demo"]
        turns.append((user_turn(demo["contexts"], demo["question"], prompt_cfg)[0], demo["answer"]))
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": prompt_cfg["system"]}]
        for u, a in turns:
            messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": final})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        parts = [prompt_cfg["system"]] + [f"{u}\n{PLAIN_TEMPLATE_ANSWER} {a}" for u, a in turns]
        text = "\n\n".join(parts + [f"{final}\n{PLAIN_TEMPLATE_ANSWER}"])
    start = text.rfind(final)
    if start < 0:
        raise RuntimeError("the chat template altered the user turn; cannot locate the context for token counting")
    return text, start, start + q_off


def _token_at(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the first token that ends after `char` (the token holding that character)."""
    for i, (_, end) in enumerate(offsets):
        if end > char:
            return i
    return len(offsets)


def encode_text(tokenizer, question: str, contexts: list[str], prompt_cfg: dict) -> EncodedPrompt:
    text, turn_start, q_start = render(tokenizer, contexts, question, prompt_cfg)
    add_special = not getattr(tokenizer, "chat_template", None)  # the chat template already holds its specials
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    first = _token_at(offsets, turn_start)
    q_tok = _token_at(offsets, q_start)
    n = len(ids)
    return EncodedPrompt(ids, n, n - first, q_tok - first if contexts else 0)


def encode_with_evidence(tokenizer, question: str, ranked: list[Evidence], prompt_cfg: dict, max_tokens: int,
                         doc_position: dict[str, int] | None = None) -> EncodedPrompt:
    """Encode a prompt holding `ranked` evidence (best first), shown in document order when `doc_position` is
    given; while it is longer than `max_tokens`, drop the lowest-ranked evidence (never the question)."""
    keep = list(ranked)
    while True:
        shown = sorted(keep, key=lambda e: doc_position[e.id]) if doc_position is not None else keep
        enc = encode_text(tokenizer, question, [e.text for e in shown], prompt_cfg)
        if enc.tokens_full <= max_tokens:
            enc.kept, enc.n_dropped = shown, len(ranked) - len(keep)
            return enc
        if not keep:
            raise InputError(f"the question alone takes {enc.tokens_full} tokens, over max_input_tokens={max_tokens}:"
                             f" {question[:80]!r}...; raise generator.max_input_tokens")
        per_item = max(enc.tokens_context / max(len(keep), 1), 1.0)
        drop = max(1, int((enc.tokens_full - max_tokens) / per_item))
        keep = keep[:-drop] if drop < len(keep) else []


LATENT_SLOT = "\uE000"  # a private-use character marks where a latent goes while the text is rendered


@dataclass
class LatentPrompt:
    """A prompt with embedding slots between its text token segments: latents (one slot per evidence item, T
    positions each), or images (a composed VLM's visual tokens)."""

    segments: list[list[int]]  # len(segments) == n_slots + 1
    slot_sizes: list[int]  # generator positions in each slot
    tokens_full: int
    tokens_no_system: int
    tokens_context: int
    kept: list[Evidence] = field(default_factory=list)
    n_dropped: int = 0

    @property
    def n_slots(self) -> int:
        return len(self.segments) - 1


def encode_slots(tokenizer, question: str, contexts: list[str], slot_sizes: list[int], prompt_cfg: dict,
                 context_label: str | None = None) -> LatentPrompt:
    """Render `contexts` (each may hold LATENT_SLOT marks) like text contexts; each text segment is tokenized on
    its own, so the ids here are exactly what the generator receives. Every slot position and every label token
    counts (docs/method.md section 5)."""
    text, turn_start, q_start = render(tokenizer, contexts, question, prompt_cfg, context_label=context_label)
    pieces = text.split(LATENT_SLOT)
    if len(pieces) - 1 != len(slot_sizes):
        raise ValueError(f"{len(pieces) - 1} slots in the prompt but {len(slot_sizes)} slot sizes")
    # A space before a slot would be a lone token of its own ("Latent context 1: " ends in one), a position the
    # text prompt never has: in text, "Context 1: Ada" tokenizes as "Context", " 1", ":", " Ada", the space going
    # with the word. So the slot takes the place of the space-led word, and the space is not sent.
    q_in_last = q_start - (len(text) - len(pieces[-1]))  # the question's offset within the last piece
    pieces = [p.rstrip(" ") if i < len(pieces) - 1 else p for i, p in enumerate(pieces)]
    add_special = not getattr(tokenizer, "chat_template", None)
    segments, offsets_first, offsets_last = [], None, None
    for i, piece in enumerate(pieces):
        enc = tokenizer(piece, add_special_tokens=add_special and i == 0, return_offsets_mapping=True)
        segments.append(enc["input_ids"])
        if i == 0:
            offsets_first = enc["offset_mapping"]
        if i == len(pieces) - 1:
            offsets_last = enc["offset_mapping"]
    total = sum(map(len, segments)) + sum(slot_sizes)
    first = _token_at(offsets_first, turn_start)
    if contexts and q_in_last < 0:
        raise ValueError("the question holds a slot mark")
    q_tok = total - len(segments[-1]) + _token_at(offsets_last, q_in_last)
    return LatentPrompt(segments, list(slot_sizes), total, total - first, q_tok - first if contexts else 0)


LATENT_LAYOUTS = ("paper", "compact")


def encode_latent(tokenizer, question: str, n_latents: int, prompt_cfg: dict, positions_per_slot: int = 1
                  ) -> LatentPrompt:
    """The prompt of docs/method.md section 4 with `Latent context i: <latent>` in place of each text context
    (`prompt.latent_layout: paper`), or one label for the whole memory with the latents side by side, each its own
    positions (`compact`: `Memory: <l1><l2>...<lk>`, `prompt.memory_label`)."""
    layout = prompt_cfg.get("latent_layout", "paper")
    if layout not in LATENT_LAYOUTS:
        raise InputError(f"prompt.latent_layout must be one of {LATENT_LAYOUTS}, got {layout!r}")
    if layout == "compact":
        return encode_slots(tokenizer, question, [LATENT_SLOT * n_latents] if n_latents else [],
                            [positions_per_slot] * n_latents, prompt_cfg,
                            context_label=prompt_cfg.get("memory_label", "Memory: "))
    return encode_slots(tokenizer, question, [LATENT_SLOT] * n_latents, [positions_per_slot] * n_latents,
                        prompt_cfg, context_label=prompt_cfg["latent_label"])


def evidence_context(e: Evidence) -> str:
    """How an evidence item appears as a context: its text, or for an image a slot for its visual tokens followed
    by its title and caption (WebQA's image facts)."""
    if e.kind != "image":
        return e.text
    return LATENT_SLOT + (f" {e.search_text}" if e.search_text else "")


def fit_evidence(ranked: list[Evidence], question: str, max_tokens: int, encode,
                 doc_position: dict[str, int] | None = None):
    """`encode(shown)` of the ranked evidence (best first; shown in document order when `doc_position` is given),
    dropping the lowest-ranked item while the prompt is longer than `max_tokens`; the prompt's `kept` and
    `n_dropped` are set. An error when the question alone is too long."""
    keep = list(ranked)
    while True:
        shown = sorted(keep, key=lambda e: doc_position[e.id]) if doc_position is not None else keep
        enc = encode(shown)
        if enc.tokens_full <= max_tokens or not keep:
            if enc.tokens_full > max_tokens:
                raise InputError(f"the question alone takes {enc.tokens_full} tokens, over max_input_tokens="
                                 f"{max_tokens}: {question[:80]!r}...; raise generator.max_input_tokens")
            enc.kept, enc.n_dropped = shown, len(ranked) - len(keep)
            return enc
        keep = keep[:-1]


def encode_with_images(tokenizer, question: str, ranked: list[Evidence], prompt_cfg: dict, max_tokens: int,
                       image_tokens: int, doc_position: dict[str, int] | None = None) -> LatentPrompt:
    """Like encode_with_evidence, for evidence that holds images: each image is a slot of `image_tokens` positions
    (filled with the composed VLM's visual tokens by the generator); lowest-ranked items are dropped first while the
    prompt is longer than `max_tokens`."""
    def encode(shown: list[Evidence]) -> LatentPrompt:
        sizes = [image_tokens for e in shown if e.kind == "image"]
        return encode_slots(tokenizer, question, [evidence_context(e) for e in shown], sizes, prompt_cfg)

    return fit_evidence(ranked, question, max_tokens, encode, doc_position)
