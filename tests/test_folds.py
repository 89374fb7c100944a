"""Folds of unseen tasks (subspace.folds), the leakage audit and the answer pooled over unseen tasks."""
from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_gaps import N, correct_at, predictions

from deltaspace.config import ConfigError, load_config, plan, validate_config
from deltaspace.gaps import gap_table, task_runs
from deltaspace.leakage import LeakageError, fingerprints, leaks, normalise, overlap_matrix
from deltaspace.names import SpaceName
from deltaspace.pooled import half_gap_dim, pooled_answer, pooled_table
from deltaspace.stages.audit import audit

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "tasks"
needs_tasks = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/tasks")


def folds_config(**subspace) -> dict:
    tasks = [{"name": n, "source": "package", "id": n} for n in ("rotten_tomatoes", "subjectivity", "bbc_news")]
    cfg = load_config(ROOT / "config.yaml")
    cfg["tasks"] = copy.deepcopy(tasks)
    cfg["subspace"] = {"folds": 3, "dims": [2], "seeds": [0], "leakage": {"max_share": 0.1}, **subspace}
    return cfg


def test_folds_cover_every_task_once_pinned_first_then_the_smallest_fold():
    cfg = folds_config()
    cfg["tasks"][2]["fold"] = 0
    cfg["tasks"].append({"name": "late", "source": "package", "id": "bbc_news", "fold": 0})
    cfg["subspace"]["folds"] = 2
    valid = validate_config(cfg, ROOT)
    assert plan.folds(valid) == {0: ["bbc_news", "late"], 1: ["rotten_tomatoes", "subjectivity"]}
    assert plan.spaces(valid) == ["svd-d2-f0", "svd-d2-f1", "random-d2-f0", "random-d2-f1"]
    assert plan.held_out_of(valid, "svd-d2-f1") == ["rotten_tomatoes", "subjectivity"]
    assert plan.merge_held_out(valid, "late") == ["bbc_news", "late"]
    jobs = plan.optimize_jobs(valid)
    # every task is optimised in exactly one fold of each subspace, and only in its own fold's
    for space in ("svd-d2", "random-d2"):
        tasks = Counter(t for s, t, _ in jobs if str(SpaceName.parse(s).pooled) == space)
        assert tasks == Counter({"rotten_tomatoes": 1, "subjectivity": 1, "bbc_news": 1, "late": 1})
    assert all(t in plan.held_out_of(valid, s) for s, t, _ in jobs)
    assert "fold" not in plan.task_config(valid, "late")  # another fold reruns no training


@pytest.mark.parametrize("change, key, words", [
    (lambda c: c["subspace"].update(held_out=["bbc_news"]), "subspace.held_out", "leave held_out out"),
    (lambda c: c["tasks"][0].update(fold=3), "tasks", "rotten_tomatoes (fold 3): folds are 0..2"),
    (lambda c: c["subspace"].update(folds=4), "subspace.folds", "4 folds need at least 4 tasks"),
    (lambda c: [t.update(fold=0) for t in c["tasks"]], "tasks", "fold 0 holds every task"),
    (lambda c: c["subspace"].update(dims=[5]), "subspace.dims", "give 4 solutions"),
    (lambda c: c["subspace"].pop("folds") and c["tasks"][0].update(fold=1), "tasks", "subspace.folds is not set"),
])
def test_fold_mistakes_name_their_key(change, key, words):
    cfg = folds_config()
    change(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, ROOT)
    assert key in str(err.value) and words in str(err.value), str(err.value)


def test_hub_tasks_reads_each_entry_from_its_hub_block():
    cfg = folds_config()
    cfg["hub_tasks"] = True
    cfg["tasks"][0] |= {"seeds": [0], "fold": 1, "hub": {"id": "org/rt", "splits": {"test": "validation"}}}
    valid = validate_config(cfg, ROOT)
    entry = valid["tasks"][0]
    assert (entry["source"], entry["id"], entry["splits"], entry["seeds"], entry["fold"]) == \
        ("hub", "org/rt", {"test": "validation"}, [0], 1)
    assert plan.task_config(valid, "rotten_tomatoes") == {"name": "rotten_tomatoes", "source": "hub", "id": "org/rt",
                                                          "splits": {"test": "validation"}}
    assert valid["tasks"][1]["source"] == "package"  # an entry without a hub block keeps its source


@needs_tasks
def test_the_experiment_config_optimises_every_task_as_unseen_exactly_once():
    cfg = validate_config(load_config(ROOT / "configs" / "folds.yaml"), ROOT)
    folds = plan.folds(cfg)
    assert len(folds) == 4 and sorted(sum(folds.values(), [])) == sorted(plan.task_names(cfg))
    assert all(len(plan.task_names(cfg)) - len(names) >= 12 for names in folds.values())  # 12 source tasks per fold
    assert {"mr", "sst2", "sst5", "subj"} <= set(folds[0])  # they share texts: unseen together
    jobs = plan.optimize_jobs(cfg)
    per_space = Counter((str(SpaceName.parse(s).pooled), t) for s, t, _ in jobs)
    assert set(per_space.values()) == {1}
    assert len([k for k in per_space if not k[0].startswith("learned")]) == 6 * len(plan.task_names(cfg))
    assert {t for s, t in per_space if s == "learned-d8"} == set(folds[0])  # learned: fold 0 only
    assert all("hub" in t for t in cfg["tasks"] if t["source"] == "file")  # each stands for a hub dataset


def test_normalised_texts_meet_across_tokenisations():
    assert normalise("It is n't  a Bad film .") == normalise("it isn't a bad film") == "itisntabadfilm"
    frame = pd.DataFrame({"text": ["It is n't a bad film at all , really .", "short", "Another review of some length"],
                          "text_pair": ["", "", ""]})
    texts = fingerprints({"train": frame})
    assert len(texts) == 2  # "short" proves nothing
    other = fingerprints({"test": pd.DataFrame({"text": ["it isn't a bad film at all, really"], "text_pair": [""]})})
    matrix = overlap_matrix({"a": texts, "b": other})
    assert matrix.loc["a", "b"] == 0.5 and matrix.loc["b", "a"] == 1.0
    found = leaks(matrix, {"fold 0": ["b"]}, max_share=0.01)
    assert [(x.unseen, x.source, x.share) for x in found] == [("b", "a", 1.0)]
    assert leaks(matrix, {"fold 0": ["a", "b"]}, max_share=0.01) == []  # unseen together: no source


@needs_tasks
def test_the_audit_refuses_a_fold_holding_a_duplicate_of_an_unseen_task(tmp_path):
    data = {"root": str(SHARED), "max_train": 50, "max_validation": 20, "max_test": 20, "validation_fraction": 0.1,
            "test_fraction": 0.2, "split_seed": 1, "max_text_chars": 100000}
    tasks = {name: {"name": name, "source": "file", "path": path}
             for name, path in (("cr", "cr"), ("trec", "trec"), ("cr_again", "cr"))}
    table = tmp_path / "overlap.parquet"
    with pytest.raises(LeakageError) as err:
        audit(tasks=tasks, data=data, groups={"fold 0": ["cr"], "fold 1": ["trec", "cr_again"]}, max_share=0.01,
              base_dir=ROOT, table_path=table)
    message = str(err.value)
    assert "cr (unseen in fold 0) shares 100.0% of its texts with source task cr_again" in message
    assert "cr_again (unseen in fold 1) shares 100.0% of its texts with source task cr" in message
    assert "trec" not in message.split("\n", 1)[1].split("No subspace")[0]  # trec shares nothing
    assert not table.exists()  # nothing half-written
    audit(tasks=tasks, data=data, groups={"fold 0": ["cr", "cr_again"], "fold 1": ["trec"]}, max_share=0.01,
          base_dir=ROOT, table_path=table)
    written = pd.read_parquet(table).set_index(["task", "other"]).share
    assert written["cr", "cr_again"] == 1.0 and written["trec", "cr"] == 0.0


def planted(tasks: dict[str, tuple[float, float, float]]):
    """Predictions of lora on several unseen tasks: (original, found svd-d4, random-d4) accuracies, zero-shot 0.5."""
    frames = {"original": [], "optimized": [], "merge": []}
    for k, (task, (orig, found, random)) in enumerate(tasks.items()):
        labels = np.random.default_rng(k).integers(0, 2, N)
        frames["original"].append(predictions({("lora", task, 0, "best"): correct_at(orig, 10 * k + 1),
                                                ("lora", task, 0, "init"): correct_at(0.5, 10 * k + 2)},
                                               ("det", "task", "seed", "point"), labels))
        frames["optimized"].append(predictions({("svd-d4", "lora", task, 0, "best"): correct_at(found, 10 * k + 3),
                                                ("random-d4", "lora", task, 0, "best"): correct_at(random, 10 * k + 4)},
                                               ("space", "det", "task", "seed", "point"), labels))
        frames["merge"].append(predictions({("lora", task, "best"): correct_at(0.55, 10 * k + 5)},
                                           ("det", "task", "point"), labels))
    runs = task_runs(*(pd.concat(f, ignore_index=True) for f in frames.values()))
    return runs, gap_table(runs, held_out=list(tasks))


def test_the_pooled_answer_averages_measurable_unseen_tasks_and_leaves_the_others_out():
    runs, gaps = planted({"a": (0.9, 0.8, 0.55), "b": (0.8, 0.7, 0.5), "c": (0.7, 0.65, 0.5),
                          "flat": (0.51, 0.9, 0.5)})  # flat: the original run does not beat zero-shot
    table = pooled_table(runs, gaps)
    row = table.iloc[0]
    assert (row.space, row.det, row.tasks, row.left_out) == ("svd-d4", "lora", 3, "flat")
    assert row.found == pytest.approx(np.mean([0.75, 2 / 3, 0.75]))  # flat's g of 40 would swamp the mean
    assert row.random == pytest.approx(np.mean([0.125, 0.0, 0.0]))
    assert row.found_low > row.random_high  # apart beyond both intervals
    assert row.difference == pytest.approx(np.mean([0.25, 0.2, 0.15])) and row.difference_low > 0.1
    assert row.beats_random == 3
    assert half_gap_dim(table, "lora", "svd") == 4
    sentence = pooled_answer(table, pd.DataFrame())[0]
    assert sentence.startswith("**lora**: svd (3 unseen tasks; left out: flat): d = 4: g 0.72 [")
    assert "half the gap closed from d = 4" in sentence and "The paper's claim holds here" in sentence


def test_the_pooled_answer_says_fails_when_random_does_as_well():
    runs, gaps = planted({"a": (0.9, 0.6, 0.6), "b": (0.8, 0.55, 0.56)})
    table = pooled_table(runs, gaps)
    assert table.iloc[0].difference_low < 0 < table.iloc[0].difference_high
    assert half_gap_dim(table, "lora", "svd") is None
    assert "The paper's claim fails here" in pooled_answer(table, pd.DataFrame())[0]


def test_the_cost_counts_the_jobs_left_and_prefers_measured_seconds(tmp_path):
    from deltaspace import cost

    cfg = validate_config(load_config(ROOT / "configs" / "tiny.yaml"), ROOT)
    longer = copy.deepcopy(cfg)
    longer["train"]["steps"] = 10 * (cfg["train"]["steps"] or 4)
    assert cost.modelled(longer, "train_det") > cost.modelled(cfg, "train_det") > cost.START_S
    log = tmp_path / "results" / "logs" / "train_det" / "lora" / "a"
    log.mkdir(parents=True)
    for i, seconds in enumerate((10.0, 30.0, 20.0)):
        (log / f"seed{i}.log").write_text(f"lora/a/seed{i}: 5.0 s in training steps (9.0 examples/s), "
                                          f"{seconds} s for the whole job\n")
    assert sorted(cost.measured(tmp_path, "train_det")) == [10.0, 20.0, 30.0]
    configfile = tmp_path / "tiny.yaml"
    raw = load_config(ROOT / "configs" / "tiny.yaml")
    raw["workdir"] = str(tmp_path / "run")  # nothing run there yet: every job is left
    configfile.write_text(__import__("yaml").safe_dump(raw))
    table = cost.estimate(configfile).set_index("rule")
    assert table.loc["train_det", "jobs"] == len(cfg["dets"]) * len(cfg["tasks"])
    assert table.loc["optimize_subspace", "from"] == "model" and (table.cpu_hours >= 0).all()


def test_the_spent_time_counts_each_job_once_and_its_wall_as_the_union_of_spans(tmp_path):
    import json

    from deltaspace import cost

    meta = tmp_path / ".snakemake" / "metadata"
    meta.mkdir(parents=True)
    records = [("a", "train_det", 1, 0, 100), ("b", "train_det", 1, 0, 100),  # two outputs of one job
               ("c", "train_det", 2, 50, 250), ("d", "train_det", 3, 400, 500),  # overlaps the first; later alone
               ("e", "optimize_subspace", 4, 0, 36), ("f", "optimize_subspace", 5, 0, None)]  # unfinished
    for name, rule, job, start, end in records:
        (meta / name).write_text(json.dumps({"rule": rule, "job_hash": job, "starttime": start, "endtime": end,
                                             "incomplete": end is None}))
    table = cost.spent(tmp_path).set_index("rule")
    assert table.loc["train_det", "jobs"] == 3 and table.loc["optimize_subspace", "jobs"] == 1
    assert table.loc["train_det", "cpu_hours"] == round((100 + 200 + 100) / 3600, 2)
    assert table.loc["train_det", "wall_hours"] == round((250 + 100) / 3600, 2)


def test_learned_subspaces_only_where_asked():
    cfg = folds_config(methods=["svd", "learned"], dims=[1, 2], learned={"dims": [2], "folds": [1]})
    valid = validate_config(cfg, ROOT)
    assert [s for s in plan.spaces(valid) if s.startswith("learned")] == ["learned-d2-f1"]
    assert {t for s, t, _ in plan.optimize_jobs(valid) if s == "learned-d2-f1"} == set(plan.folds(valid)[1])
    for change, key in (({"folds": [3]}, "subspace.learned.folds"), ({"dims": [4]}, "subspace.learned.dims")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_config(folds_config(methods=["svd", "learned"], dims=[1, 2], learned=change), ROOT)


def test_transfer_pools_over_measurable_unseen_tasks_beside_the_targets_random_code():
    from deltaspace.pooled import pooled_markdown, transfer_pooled

    rows = []
    for task, (orig, zero, random, acc) in {"a": (0.9, 0.5, 0.6, 0.7), "b": (0.8, 0.4, 0.4, 0.8),
                                           "flat": (0.5, 0.5, 0.5, 0.9)}.items():
        for source in ("lora", "prefix"):
            rows.append({"space": "svd-d4", "task": task, "seed": 0, "source": source, "target": "lora",
                         "accuracy": acc if source == "prefix" else orig, "target_original": orig,
                         "target_zero_shot": zero, "target_random": random})
            rows.append({**rows[-1], "space": "random-d4"})
    gaps = pd.DataFrame([{"space": "zero-shot", "det": "lora", "task": t, "seen": False, "measurable": t != "flat"}
                         for t in ("a", "b", "flat")])
    table = transfer_pooled(pd.DataFrame(rows), gaps).set_index("source")
    assert set(table.space) == {"svd-d4"} and (table.tasks == 2).all()  # flat left out, controls not pooled
    assert table.loc["prefix", "g"] == pytest.approx(np.mean([0.5, 1.0]))
    assert table.loc["lora", "g"] == pytest.approx(1.0) and table.loc["lora", "g_low"] == pytest.approx(1.0)
    assert table.loc["prefix", "target_random_g"] == pytest.approx(np.mean([0.25, 0.0]))
    pooled = pd.DataFrame([{"space": "svd-d4", "dim": 4, "det": "lora", "tasks": 2, "left_out": "flat",
                            "found": 0.8, "found_low": 0.6, "found_high": 1.0, "random": 0.1, "random_low": 0.0,
                            "random_high": 0.2, "difference": 0.2, "difference_low": 0.1, "difference_high": 0.3,
                            "merge": 0.3, "beats_random": 2}])
    text = pooled_markdown(pooled, table.reset_index())
    assert "Transfer in svd-d4" in text
    assert __import__("re").search(r"\| target's own code in random \| 0\.12 ", text)
