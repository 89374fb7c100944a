"""Classification without a trainable head: the DET's tensors are the whole solution.

encoder: each label is scored by the cosine similarity of the pooled text embedding and the pooled
         embedding of the label's name, over a temperature. Label names go through the same (tuned)
         model, so the DET can move both.
causal:  each label is scored by the log-probability of its first word token after the text and an
         answer prefix.
seq2seq: each label is scored by the decoder's log-likelihood of the label's words given the encoded text:
         the SUM of the log-probabilities of its tokens (its words, then the end-of-sequence token when the
         tokenizer has one), so that a softmax over the labels is the model's own distribution restricted to
         the label set (a mean would no longer be a probability of the label, and would favour labels whose
         later tokens are easy to predict once the first is given). The encoder runs once per batch; the
         decoder scores every label of every example in one batched pass.

A method that prepends tokens inside the model (prompt tuning) makes the outputs longer than the input;
the head then reads the last input-length positions.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutput

from . import dets
from .models import load_backbone


class HeadError(ValueError):
    """The labels cannot be scored with this backbone."""


class Classifier(nn.Module):
    """The root module: backbone (with its DET attached) plus the label scoring rule."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        kind: str,
        labels: Sequence[str],
        *,
        max_length: int = 128,
        temperature: float = 0.05,
        pooling: str = "mean",
        answer_prefix: str = "\nAnswer:",
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.labels = list(labels)
        self.max_length = max_length
        self.temperature = temperature
        self.pooling = pooling
        self.answer_prefix = answer_prefix
        self.suffix = []
        if kind == "causal":
            self.suffix = tokenizer(answer_prefix, add_special_tokens=False)["input_ids"]
            first = [tokenizer(" " + name, add_special_tokens=False)["input_ids"][:1] for name in self.labels]
            ids = [f[0] if f else None for f in first]
            if None in ids or len(set(ids)) != len(ids):
                raise HeadError(f"labels {self.labels}: their first word tokens are not distinct for this tokenizer")
            self.register_buffer("label_token", torch.tensor(ids), persistent=False)
        elif kind == "seq2seq":
            self._label_sequences()
        else:
            enc = self.collate([self.encode_one(name) for name in self.labels])
            self.register_buffer("label_ids", enc["input_ids"], persistent=False)
            self.register_buffer("label_mask", enc["attention_mask"], persistent=False)

    def for_labels(self, labels: Sequence[str]) -> Classifier:
        """A classifier for another task's labels on the same model (its DET tensors shared, not copied)."""
        return Classifier(self.model, self.tokenizer, self.kind, labels, max_length=self.max_length,
                          temperature=self.temperature, pooling=self.pooling, answer_prefix=self.answer_prefix)

    def _label_sequences(self) -> None:
        """seq2seq: each label's target tokens (right-padded, with a mask), and the decoder's inputs: the targets
        shifted right behind the decoder's start token."""
        end = [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]
        seqs = [self.tokenizer(name, add_special_tokens=False)["input_ids"] + end for name in self.labels]
        if any(len(s) == len(end) for s in seqs) or len(set(map(tuple, seqs))) != len(seqs):
            raise HeadError(f"labels {self.labels}: their token sequences are empty or not distinct for this tokenizer")
        pad = self.tokenizer.pad_token_id
        start = getattr(self.model.config, "decoder_start_token_id", None)
        start = pad if start is None else start
        width = max(len(s) for s in seqs)
        targets = torch.full((len(seqs), width), pad, dtype=torch.long)
        inputs = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width))
        for i, s in enumerate(seqs):
            targets[i, : len(s)] = torch.as_tensor(s)
            inputs[i, : len(s)] = torch.as_tensor([start, *s[:-1]])
            mask[i, : len(s)] = 1.0
        self.register_buffer("label_targets", targets, persistent=False)
        self.register_buffer("label_decoder_ids", inputs, persistent=False)
        self.register_buffer("label_target_mask", mask, persistent=False)

    # -- tokenisation --------------------------------------------------------------------------
    def encode_one(self, text: str, pair: str | None = None) -> list[int]:
        """Token ids of one example, truncated to max_length (the causal answer prefix always kept)."""
        budget = self.max_length - len(self.suffix)
        ids = self.tokenizer(text, pair, truncation=True, max_length=budget)["input_ids"]
        return ids + self.suffix

    def encode(self, texts: Sequence[str], pairs: Sequence[str | None] | None = None) -> list[list[int]]:
        """Token ids per example, as encode_one gives them; a missing or empty pair (single-text tasks store "")
        is no pair at all. One tokenizer call for the single texts and one for the pairs: a fast tokenizer then
        works through the batch at once (one call per text took seconds of every job's start-up)."""
        pairs = [p if isinstance(p, str) and p else None for p in pairs] if pairs is not None else [None] * len(texts)
        out: list[list[int]] = [[] for _ in texts]
        budget = self.max_length - len(self.suffix)
        for paired in (False, True):
            where = [i for i, p in enumerate(pairs) if (p is not None) == paired]
            if not where:
                continue
            args = ([texts[i] for i in where], [pairs[i] for i in where]) if paired else ([texts[i] for i in where],)
            for i, ids in zip(where, self.tokenizer(*args, truncation=True, max_length=budget)["input_ids"]):
                out[i] = ids + self.suffix
        return out

    def collate(self, seqs: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Right-pad a batch of id lists."""
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.as_tensor(s)
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    # -- scoring ---------------------------------------------------------------------------------
    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden[:, hidden.shape[1] - input_ids.shape[1] :]  # drop prepended soft tokens
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def label_embeddings(self) -> torch.Tensor:
        """Unit-length pooled embeddings of the label names (encoder), one row per label."""
        return F.normalize(self._pool(self.label_ids, self.label_mask).float(), dim=-1)

    def _label_log_likelihoods(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """seq2seq: (batch, labels) sums of the label tokens' log-probabilities. The decoder needs no padding
        mask: its attention is causal and padding comes after a label's tokens, whose scores are masked out."""
        hidden = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        shift = hidden.shape[1] - input_ids.shape[1]  # soft tokens prepended inside the encoder (prompt tuning)
        if shift:
            attention_mask = torch.cat([attention_mask.new_ones(len(input_ids), shift), attention_mask], dim=1)
        batch, n = len(input_ids), len(self.labels)
        logits = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden.repeat_interleave(n, dim=0)),
            attention_mask=attention_mask.repeat_interleave(n, dim=0),
            decoder_input_ids=self.label_decoder_ids.repeat(batch, 1),
            use_cache=False,
        ).logits.float()
        targets = self.label_targets.repeat(batch, 1)
        token = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        return (token * self.label_target_mask.repeat(batch, 1)).sum(-1).view(batch, n)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, label_embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of shape (batch, labels).

        label_embeddings: the encoder's label_embeddings(), when the caller holds them for unchanged DET
        tensors (evaluation); by default they are computed here, so that training moves them too.
        """
        if self.kind == "causal":
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            shift = logits.shape[1] - input_ids.shape[1]
            last = shift + attention_mask.sum(1) - 1
            final = logits[torch.arange(len(last), device=last.device), last].float()
            return F.log_softmax(final, dim=-1)[:, self.label_token]
        if self.kind == "seq2seq":
            return self._label_log_likelihoods(input_ids, attention_mask)
        text = F.normalize(self._pool(input_ids, attention_mask).float(), dim=-1)
        label = self.label_embeddings() if label_embeddings is None else label_embeddings
        return text @ label.T / self.temperature


def build_classifier(backbone_cfg: dict, det_cfg: dict, labels: list[str], seed: int) -> tuple[Classifier, int]:
    """Backbone + DET (initialised from `seed`) + head; returns the classifier and the expected count."""
    backbone = load_backbone(backbone_cfg)
    expected = dets.expected_count(backbone.model, det_cfg, backbone.kind)
    model = dets.attach(backbone.model, det_cfg, backbone.kind, seed)
    classifier = Classifier(
        model,
        backbone.tokenizer,
        backbone.kind,
        labels,
        max_length=backbone_cfg["max_length"],
        temperature=backbone_cfg["temperature"],
        pooling=backbone_cfg["pooling"],
        answer_prefix=backbone_cfg["answer_prefix"],
    )
    return classifier, expected
