"""Small byte-level BPE tokenizers built with `tokenizers`, for the demo model and test configs.

Byte-level BPE never produces ``<unk>``: any Unicode prompt (right-to-left text,
emoji) tokenizes.  Special tokens are single ids and are never split or merged.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BASE_SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")

# Words the synthetic tasks and chat templates use; BPE merges make them 1–2 tokens.
_CORPUS_WORDS = """
how many are there in the image count objects shapes circles squares triangles stars crosses diamonds
which box fits object best one point darker lighter about same brightness reflectance marked
reference left right top bottom panel corresponds physical after shift rotation scale
tip corner centre center part plays role handle head across different composite
jigsaw patch fills hole candidate texture pattern visual similarity art style drawn strokes palette
dithering choices answer question user assistant system image describe colour color shape position
red green blue yellow purple orange cyan white black gray pink brown quadrant upper lower
what is the of a an to and or with on at for from by as it this that these those be has have
first second third fourth option letter choose select only respond single
topleft topright bottomleft bottomright yes no options word
""".split()  # noqa: SIM905 - one word list, readable as text


def _corpus(extra: Sequence[str] = ()) -> list[str]:
    lines = [" ".join(_CORPUS_WORDS)] * 4 + list(extra)
    for w in _CORPUS_WORDS:
        lines += [w, " " + w, w.capitalize(), " " + w.capitalize()]
    for c in string.ascii_uppercase + string.digits:
        lines += [c, f"({c})", f" ({c})", f" {c}", f"{c}."]
    for n in range(21):
        lines += [str(n), f" {n}"]
    lines += ["USER: ", "ASSISTANT:", "Choices:", "Answer with the option's letter."]
    return lines


def build_bpe_tokenizer(
    vocab_size: int = 1024,
    extra_special_tokens: Sequence[str] = ("<image>",),
    chat_template: str | None = None,
    bos_token: str | None = "<s>",
    corpus: Sequence[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on a fixed corpus (+ ``corpus`` lines; deterministic) and wrap it for transformers."""
    specials = list(BASE_SPECIAL_TOKENS) + [t for t in extra_special_tokens if t not in BASE_SPECIAL_TOKENS]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(corpus), trainer=trainer)
    if bos_token is not None:
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B", special_tokens=[(bos_token, bos_id)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos_token,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=[t for t in specials if t not in BASE_SPECIAL_TOKENS],
        chat_template=chat_template,
    )
    fast.padding_side = "right"
    return fast
