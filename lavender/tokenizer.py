"""The BERT WordPiece tokenizer, from a local vocabulary only (no hub access at run time)."""
import logging

from transformers import BertTokenizer

from .paths import resolve_vocab

log = logging.getLogger("lavender")


def load_tokenizer(name="bert-base-uncased"):
    """Tokenizer for a config's `tokenizer`/`txt_backbone` name (see `lavender.paths`)."""
    vocab = resolve_vocab(name)
    # transformers 5 ignores BertTokenizerFast(vocab_file=...); the positional path works in 4.x and 5.x.
    tok = BertTokenizer(vocab, do_lower_case=True)
    if len(tok) < 10:
        raise RuntimeError(f"tokenizer from {vocab} has only {len(tok)} tokens")
    log.info("tokenizer: %s (%d tokens)", vocab, len(tok))
    return tok


def special_ids(tok):
    """Token ids every task needs, read from the tokenizer (never hard-coded)."""
    ids = {"pad": tok.pad_token_id, "cls": tok.cls_token_id, "sep": tok.sep_token_id,
           "mask": tok.mask_token_id, "unk": tok.unk_token_id}
    for word in ("true", "false", "answer", ":"):
        ids[word] = tok.convert_tokens_to_ids(word)
    ids.update({str(d): tok.convert_tokens_to_ids(str(d)) for d in range(10)})
    return ids
