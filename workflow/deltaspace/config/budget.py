"""The default budget of an apet DET: the trainable count of another DET of the config.

An apet entry with `budget: null` takes its count from the DET named by `budget_like`, by default the config's
first DET of method lora (apet then trains as many entries as LoRA: the methods compare at an equal budget).
The count depends on the backbone, so it is computed in the job; here that DET's settings are copied into the
entry (`budget_like_settings`, its lr left out), so that the entry alone says what the job trains and a change
to those settings reruns the apet jobs too (the entry is their params).
"""
from __future__ import annotations

import copy


def resolve_budgets(dets: dict) -> list[tuple[str, str]]:
    """Fill budget_like and budget_like_settings of each apet entry in place; return the problems."""
    errors = []
    for name, entry in dets.items():
        if entry["method"] != "apet":
            continue
        if entry["budget"] is not None:
            if entry["budget_like"] is not None:
                message = f"{entry['budget_like']!r}, but budget is set ({entry['budget']}): set one of them"
                errors.append((f"dets.{name}.budget_like", message))
            entry["budget_like_settings"] = None
            continue
        like = entry["budget_like"] or next((n for n, e in dets.items() if e["method"] == "lora"), None)
        if like is None:
            message = ("required here: the number of weight entries to train (null, the default, takes the trainable "
                       "count of the config's lora DET, and the config has none; or name another DET in budget_like)")
            errors.append((f"dets.{name}.budget", message))
        elif like not in dets:
            errors.append((f"dets.{name}.budget_like", f"{like!r} is not a DET of the config (known: {', '.join(dets)})"))
        elif dets[like]["method"] == "apet":
            errors.append((f"dets.{name}.budget_like", f"{like!r} is an apet DET itself: name a DET of another method"))
        else:
            entry["budget_like"] = like
            entry["budget_like_settings"] = {k: copy.deepcopy(v) for k, v in dets[like].items() if k != "lr"}
    return errors
