"""IA3 through peft (Liu et al. 2022): learned vectors that rescale keys, values and the feed-forward block's
inner activation, all started at one (the model starts exactly at the backbone).

A target module's vector scales its output (out_features entries), a feed-forward module's its input
(in_features entries). Both lists are regular expressions searched in the module names, as for adapters;
the matched modules reach peft as one exact-name pattern, so peft attaches to exactly what was counted.
"""
from __future__ import annotations

import re

from peft import IA3Config, get_peft_model
from torch import nn

from ._targets import IA3_FEEDFORWARD, IA3_TARGETS, match_linear, targets
from .base import DETError


def _modules(model: nn.Module, settings: dict) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """(name -> (out, in)) of the target modules, and the names of those that are feed-forward modules."""
    model_type = model.config.model_type
    found = match_linear(model, targets(settings, IA3_TARGETS, model_type), "regex")
    patterns = settings.get("feedforward_modules")
    if patterns is None:  # the model type's usual ones among the targets (none for an unknown type)
        return found, {n for n in found if any(re.search(p, n) for p in IA3_FEEDFORWARD.get(model_type, []))}
    feedforward = {n for n in found if any(re.search(p, n) for p in patterns)}
    if not feedforward:
        raise DETError(f"dets.{settings['method']}.feedforward_modules: {patterns} match none of the target modules "
                       f"({', '.join(sorted(found)[:3])}, ...): a feed-forward module is a target whose input is rescaled")
    return found, feedforward


def _exact(names) -> str:
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"  # (?!) matches nothing


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    found, feedforward = _modules(model, settings)
    config = IA3Config(
        target_modules=_exact(found),  # a string: peft full-matches it against each module's name
        feedforward_modules=_exact(feedforward),
        fan_in_fan_out=model.config.model_type == "gpt2",
    )
    return get_peft_model(model, config)


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    found, feedforward = _modules(model, settings)
    return sum(inp if name in feedforward else out for name, (out, inp) in found.items())
