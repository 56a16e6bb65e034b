"""XLM-RoBERTa text encoder, mean-pooled over the attention mask, at a fixed max length.

The tokenizer pads and truncates to ``max_length`` so the traced graph always sees the same
shape. Real checkpoints load through transformers (``xlm-roberta-large``: 1024-d); ``tiny``
trains a small SentencePiece-style Unigram tokenizer on generated text and builds a random
2-layer model around its vocabulary.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch import nn

from modelzoo.hf import quiet_loss_lookup

TINY_MAX_LENGTH = 32
REAL_MAX_LENGTH = 128
WORDS = ("video", "post", "funny", "music", "dance", "fight", "blood", "kiss", "hate", "love",
         "नमस्ते", "வணக்கம்", "hola", "bonjour", "cat", "dog", "news", "sport", "game", "night")


class XlmrTextEncoder(nn.Module):
    """``(input_ids, attention_mask)`` ``(N, L)`` -> mean-pooled embeddings ``(N, D)``."""

    def __init__(self, encoder: nn.Module, tokenizer, *, max_length: int) -> None:
        super().__init__()
        quiet_loss_lookup(encoder)
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.embedding_dim = int(encoder.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer(texts, padding="max_length", truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def handler_settings(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "max_length": self.max_length}

    def example(self, batch: int, generator: torch.Generator | None = None):
        rng = random.Random(batch if generator is None else generator.initial_seed())
        texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 40))) for _ in range(batch)]
        return self.tokenize(texts)

    def extra_files(self, folder: Path) -> list[Path]:
        """The tokenizer files, for the handler to load from the archive."""
        self.tokenizer.save_pretrained(str(folder))
        return [folder]


def from_checkpoint(checkpoint: str, max_length: int = REAL_MAX_LENGTH) -> XlmrTextEncoder:
    """A local directory or hub id of an XLM-RoBERTa model and its tokenizer."""
    from transformers import AutoTokenizer, XLMRobertaModel

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    encoder = XLMRobertaModel.from_pretrained(checkpoint, add_pooling_layer=False)
    return XlmrTextEncoder(encoder.eval(), tokenizer, max_length=max_length)


def train_tiny_tokenizer(seed: int = 0, vocab_size: int = 400):
    """A Unigram (SentencePiece-style) tokenizer trained on generated multilingual text."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import XLMRobertaTokenizerFast

    rng = random.Random(seed)
    corpus = [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(2000)]
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(corpus, vocab_size=vocab_size,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                unk_token="<unk>", show_progress=False)
    return XLMRobertaTokenizerFast(tokenizer_object=unigram._tokenizer, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                                   sep_token="</s>", mask_token="<mask>")


def from_size(size: str, seed: int = 0) -> XlmrTextEncoder:
    """Random weights around a locally trained tokenizer; only ``tiny`` is defined."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    if size != "tiny":
        raise ValueError(f"no {size!r} XLM-R config; give a checkpoint for real models")
    tokenizer = train_tiny_tokenizer(seed)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=48, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=96,
                              max_position_embeddings=TINY_MAX_LENGTH + 4,
                              pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    encoder = XLMRobertaModel(config, add_pooling_layer=False).eval()
    return XlmrTextEncoder(encoder, tokenizer, max_length=TINY_MAX_LENGTH)
