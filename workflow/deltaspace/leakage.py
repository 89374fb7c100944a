"""The leakage audit: do an unseen task's texts reach a task that builds its subspace?

Two tasks can be one data set under two names (a sentiment corpus and a subjectivity corpus cut from the
same review snippets), or one can hold the other's sentences with other labels. A subspace built from such a
source has seen the unseen task, and its score on it says nothing about unseen tasks. The audit compares
texts after normalisation (lower case, letters and digits only, so "is n't" and "isn't" meet) over every
split of both tasks, and gives, for each ordered pair, the share of the first task's texts found in the
second. An example's text is its text and its text pair.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd


class LeakageError(ValueError):
    """An unseen task's texts reach a source task of its subspace."""


MIN_CHARS = 20  # a normalised text shorter than this ("yes", "good") proves nothing when two tasks share it


def normalise(text: str) -> str:
    """Lower case, accents folded, letters and digits only."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def fingerprints(splits: Mapping[str, pd.DataFrame]) -> frozenset[str]:
    """The normalised texts of every split of one task (text and text pair as one), short ones left out."""
    found = set()
    for frame in splits.values():
        pairs = frame["text_pair"] if "text_pair" in frame else [""] * len(frame)
        for text, pair in zip(frame["text"], pairs):
            key = normalise(f"{text} {pair or ''}")
            if len(key) >= MIN_CHARS:
                found.add(key)
    return frozenset(found)


def overlap_matrix(texts: Mapping[str, frozenset[str]]) -> pd.DataFrame:
    """Share of each task's texts (rows) found in each other task (columns); the diagonal is 1."""
    names = list(texts)
    rows = {
        a: [len(texts[a] & texts[b]) / len(texts[a]) if texts[a] else 0.0 for b in names] for a in names
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=names).rename_axis(index="task")


@dataclass(frozen=True)
class Leak:
    group: str  # the fold (or "held out") in which `unseen` is unseen
    unseen: str
    source: str
    share: float

    def __str__(self) -> str:
        return f"{self.unseen} (unseen in {self.group}) shares {self.share:.1%} of its texts with source task {self.source}"


def leaks(matrix: pd.DataFrame, groups: Mapping[str, Sequence[str]], max_share: float) -> list[Leak]:
    """Every (unseen, source) pair above max_share: groups maps a fold's name to its unseen tasks, and the
    fold's sources are every other task of the matrix."""
    found = []
    for group, unseen in groups.items():
        sources = [task for task in matrix.columns if task not in unseen]
        for task in unseen:
            for source in sources:
                share = float(matrix.loc[task, source])
                if share > max_share:
                    found.append(Leak(group, task, source, share))
    return found


def leak_message(found: Iterable[Leak], max_share: float) -> str:
    lines = [f"  {leak}" for leak in found]
    return (
        f"the leakage audit found unseen tasks whose texts reach a source task (more than {max_share:.1%} of "
        "the unseen task's texts, after normalisation):\n" + "\n".join(lines) + "\n"
        "No subspace was built. Put tasks that share texts in one fold (a task entry's `fold:`), hold them "
        "out together, or drop one of them; subspace.leakage.max_share sets the share allowed."
    )


def overlap_view(table: pd.DataFrame, min_share: float = 0.001) -> pd.DataFrame:
    """The overlap matrix (rows: a task, columns: the task holding its texts) of the tasks with any share of
    at least min_share in another; empty when no two tasks share texts."""
    involved = table.loc[table.share >= min_share, ["task", "other"]].stack().unique()
    if not len(involved):
        return pd.DataFrame()
    part = table[table.task.isin(involved) & table.other.isin(involved)]
    return part.pivot(index="task", columns="other", values="share").fillna(1.0)
