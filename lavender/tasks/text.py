"""Text helpers every task family shares: WordPiece ids, the base encoding, masking, one-token answers,
and the original's prompt sentences (docs/original.md#task-tokens-and-prompts)."""

__all__ = ["PROMPTS", "TextHelpers"]

# Prompt sentences of the original; used only with enable_prompt. {options}: the option indices as a Python
# list, [0, 1, 2, 3, 4] for size_option 5 (the original builds it from size_option).
PROMPTS = {
    "oe": "answer the question about the video.",
    "fib": "fill in the mask to complete the sentence.",
    "mc": "which answer is correct, from {options}?",
    "vtm": "is the video-text paired, true or false?",
    "retmc": "is the video-text matched, true or false?",
    "cap": "write a description about the video.",
}


class TextHelpers:
    """Needs `self.tok` (the tokenizer), `self.ids` (lavender.tokenizer.special_ids) and `self.cfg`."""

    def prompt(self, name):
        """The prompt sentence `name` of PROMPTS for this config."""
        return PROMPTS[name].format(options=list(range(self.cfg.size_option)))

    def tokens(self, text):
        """WordPiece ids of `text` without [CLS]/[SEP]."""
        return self.tok.encode(text, add_special_tokens=False) if text else []

    def token_ids(self, texts):
        """`tokens` of many texts at once (the tokenizer's batch path: start-up counts over whole splits)."""
        texts = [str(t) for t in texts]
        backend = getattr(self.tok, "backend_tokenizer", None)
        if backend is not None:
            return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        return [self.tokens(t) for t in texts]

    def encode_base(self, text, length):
        """`[CLS] text [SEP] [PAD]...` of exactly `length` ids (the original's str2txt)."""
        ids = [self.ids["cls"]] + self.tokens(text)[: length - 2] + [self.ids["sep"]]
        return ids + [self.ids["pad"]] * (length - len(ids))

    def mask_tokens(self, ids, rng, keep, p=None):
        """Each token of `ids` not in `keep` replaced by [MASK] with probability `p` (default `p_mask`), drawn from
        `rng` (the example's own RNG: reproducible and resumable). Returns (ids, labels): labels hold
        the original id at masked positions and -1 elsewhere."""
        p = self.cfg.p_mask if p is None else p
        ids, labels = list(ids), [-1] * len(ids)
        for k, t in enumerate(ids):
            if t not in keep and rng.random() < p:
                ids[k], labels[k] = self.ids["mask"], t
        return ids, labels

    def single_token(self, word):
        """Id of `word` if it is exactly one in-vocabulary WordPiece, else -1."""
        toks = self.tokens(str(word))
        return toks[0] if len(toks) == 1 and toks[0] != self.ids["unk"] else -1
