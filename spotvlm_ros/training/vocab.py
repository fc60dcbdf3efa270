"""The demo models' tokenizer: byte-level BPE trained on the driving corpus plus every training text.

The corpus is :func:`~spotvlm_ros.models.tiny_tokenizer.driving_corpus` (the words SpotVLM's prompts are
made of) plus the synthetic world's questions, every answer, every canonical caption, the grounding
instruction and box JSON with every coordinate of the model inputs, so each answer word is one token.
Special tokens and the chat template are those of the tiny Qwen2.5-VL (:mod:`~spotvlm_ros.models.tiny`).

The corpus is frozen at the questions, answers and grounding ids the first demo models were trained with
(``CORPUS_QUESTIONS``, ``CORPUS_GROUNDING``): a new question or answer in the corpus would change the BPE
merges and with them the token ids, and a model fine-tuned with ``--init-from`` would read its embeddings
under the wrong ids. Words added to the world later (the speed-limit question, ``none``) are spelled with
the existing tokens; the speed limits themselves are single tokens already (from the box coordinates).
"""

from __future__ import annotations

import itertools
import json

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..models.grounding import grounding_instruction
from ..models.tiny import QWEN_CHAT_TEMPLATE, tiny_tokenizer
from ..models.tiny_tokenizer import driving_corpus
from ..synthetic import ANSWERS, GROUNDING, QUESTIONS, caption
from ..synthetic.signs import SPEED_LIMITS

VOCAB_SIZE = 1280
FAMILY = "qwen2_5_vl"
CORPUS_QUESTIONS = ("light", "cars", "pedestrian")
CORPUS_GROUNDING = ("light", "car", "pedestrian")


def answer_words() -> list[str]:
    """The VQA answers that must be single tokens: the corpus questions' answers and the speed limits."""
    return sorted({a for q in CORPUS_QUESTIONS for a in ANSWERS[q]} | set(SPEED_LIMITS))


def training_corpus() -> list[str]:
    """Lines the tokenizer is trained on."""
    lines = list(driving_corpus())
    lines += [QUESTIONS[q] for q in CORPUS_QUESTIONS] * 20
    lines += [f"Where is {GROUNDING[g][0]}?" for g in CORPUS_GROUNDING] * 20
    lines += [grounding_instruction()] * 10
    for light, cars, pedestrian in itertools.product(
        ANSWERS["light"], range(len(ANSWERS["cars"])), ("crossing", "waiting", "none")
    ):
        lines += [caption(light, cars, pedestrian)] * 4
    lines += [word for q in CORPUS_QUESTIONS for word in sorted(ANSWERS[q]) for _ in range(50)]
    labels = [GROUNDING[g][1] for g in CORPUS_GROUNDING]
    for i in range(0, 330, 3):
        label = labels[i % len(labels)]
        box = [i % 330, (i * 7) % 250, (i * 3 + 11) % 330, (i * 5 + 13) % 250]
        lines.append(json.dumps([{"bbox_2d": box, "label": label}]))
    return lines


def special_tokens() -> list[str]:
    """The tiny Qwen2.5-VL's special tokens, in id order."""
    added = tiny_tokenizer(FAMILY).get_added_vocab()
    return sorted(added, key=added.__getitem__)


def train_demo_tokenizer(vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Train the tokenizer (milliseconds; deterministic for the same corpus)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens(),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN_CHAT_TEMPLATE,
        model_max_length=32768,
    )
    split = {w: fast.tokenize(w) for w in answer_words()}
    bad = {w: pieces for w, pieces in split.items() if len(pieces) != 1}
    if bad:
        raise ValueError(f"answer words split into several tokens: {bad}; raise the vocabulary size")
    return fast
