"""End to end: configs/tiny.yaml through Snakemake, then what a config change would rerun."""
from __future__ import annotations

import base64
import itertools
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml

from deltaspace.delta import INIT, TRAINED
from deltaspace.io import load_table, load_tensors
from deltaspace.spacefile import load_space
from deltaspace.stages.stack_deltas import read_delta

from conftest import ROOT, TINY, snakemake, tiny_with

DETS = tuple(yaml.safe_load(TINY.read_text())["dets"])


# Snakemake's own words (9.27) for a dry run with nothing to run; the no-op tests read them rather than infer
# "nothing" from a parse that found no jobs.
NOTHING_TO_BE_DONE = "Nothing to be done (all requested files are present and up to date)."


def dry_run_jobs(result: subprocess.CompletedProcess) -> list[tuple[str, str | None]]:
    """The jobs a dry run lists, as (rule, first output or None), checked against Snakemake's Job stats table:
    a listing this parser stops reading fails here, rather than reading as a run with nothing to do."""
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    jobs = []
    for rule, body in re.findall(r"^(?:local)?rule (\S+):\n((?:[ \t]+\S.*(?:\n|$))*)", text, re.MULTILINE):
        output = re.search(r"^\s+output: ([^,\s]+)", body, re.MULTILINE)
        jobs.append((rule, output[1] if output else None))
    table = re.search(r"^Job stats:\njob +count\n-+ +-+\n((?:\S+ +\d+\n)*)total +(\d+)$", text, re.MULTILINE)
    if NOTHING_TO_BE_DONE in text:
        assert not jobs and table is None, text[-3000:]
        return []
    assert table, f"neither {NOTHING_TO_BE_DONE!r} nor a Job stats table in the dry run: {text[-3000:]}"
    stated = {rule: int(n) for rule, n in re.findall(r"^(\S+) +(\d+)$", table[1], re.MULTILINE)}
    assert sum(stated.values()) == int(table[2]) > 0, table[0]
    assert Counter(rule for rule, _ in jobs) == stated, f"jobs read {jobs} against Snakemake's {table[0]}"
    assert all(out for rule, out in jobs if rule != "all"), jobs  # only the target rule `all` has no output
    return jobs


def scheduled(result: subprocess.CompletedProcess) -> set[str]:
    """Outputs of the jobs a dry run would run (one per job: its first output)."""
    return {out for _, out in dry_run_jobs(result) if out is not None}


def assert_nothing_to_be_done(result: subprocess.CompletedProcess) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == 0 and NOTHING_TO_BE_DONE in text, text[-3000:]
    assert dry_run_jobs(result) == []


def test_end_to_end_outputs(tiny_run, tiny_config):
    results = tiny_run / "results"
    tasks = [t["name"] for t in tiny_config["tasks"]]
    for det in tiny_config["dets"]:
        stacked, meta = load_tensors(results / "stacked" / f"{det}.safetensors")
        index = load_table(results / "stacked" / f"{det}.parquet")
        assert list(index.columns) == ["row", "task", "seed", "validation_accuracy"]
        assert list(index.task) == tasks and stacked["delta"].shape[0] == len(tasks)
        assert stacked["delta"].dtype == torch.float32 and stacked["delta"].shape == stacked["init"].shape
        for row in index.itertuples():
            delta_file = results / "dets" / det / row.task / f"seed{row.seed}" / "delta.safetensors"
            layout, trained, init, dmeta = read_delta(delta_file)
            assert meta["layout"] == layout.to_json() and stacked["delta"].shape[1] == layout.size
            # the row is trained minus initial, and the layout turns it back into the DET's tensors exactly
            tensors, _ = load_tensors(delta_file)
            for name, delta in layout.unflatten(stacked["delta"][row.row]).items():
                assert torch.equal(delta, tensors[TRAINED + name] - tensors[INIT + name]), name
            assert torch.equal(stacked["init"][row.row], init)
            assert dmeta["param_count"] == layout.size and dmeta["seed"] == row.seed
            assert dmeta["det_config"] == tiny_config["dets"][det] | {"method": det}
            assert not torch.equal(trained, init), f"{det}/{row.task} did not move"
            metrics = load_table(delta_file.with_name("metrics.parquet"))
            assert list(metrics.columns) == ["det", "task", "seed", "split", "metric", "value"]
            got = metrics.set_index(["split", "metric"]).value
            assert 0 <= got["test", "accuracy"] <= 1 and got["train", "examples"] > 0
            assert not {"seconds", "examples_per_s", "wall_seconds"} & set(metrics.metric)  # clocks: in the log
            assert got["train", "trainable_params"] == layout.size
            assert got["validation", "accuracy"] == row.validation_accuracy
    assert not list(results.rglob("*.tmp")), "a temporary file was left behind"


def test_subspace_stage_outputs(tiny_run, tiny_config):
    results = tiny_run / "results"
    dets = list(tiny_config["dets"])
    space = load_space(results / "subspace" / "svd-d3" / "projections.safetensors")
    assert space.subspace.dets == sorted(dets) and space.meta["held_out"] == ["mr"]
    assert [r["task"] for r in space.meta["rows"]] == ["cr", "rte", "sst2"]  # mr never enters
    for det in dets:
        stacked, _ = load_tensors(results / "stacked" / f"{det}.safetensors")
        assert space.subspace.projections[det].shape == (stacked["delta"].shape[1], 3)
        assert torch.equal(space.subspace.offsets[det], torch.zeros(stacked["delta"].shape[1]))  # z = 0: the init
    codes = load_table(results / "subspace" / "svd-d3" / "codes.parquet")
    assert list(codes.columns) == ["space", "task", "seed", "z0", "z1", "z2"] and len(codes) == 3
    recon = load_table(results / "subspace" / "svd-d3" / "reconstruction.parquet")
    assert len(recon) == 4 * len(dets)
    # 3 solutions through the initial values span exactly 3 directions: the seen ones are rebuilt exactly
    assert recon[recon.seen].relative_error.max() < 1e-4 and set(recon[~recon.seen].task) == {"mr"}

    for det, task, name in itertools.product(dets, ("sst2", "mr"), ("svd-d3", "random-d3")):
        run = results / "optimized" / name / det / task / "seed0"
        z, _ = load_tensors(run / "z.safetensors")
        got = load_table(run / "metrics.parquet").set_index(["split", "metric"]).value
        # the start is a candidate: z stays where it began exactly when no evaluation beat it (best step 0)
        assert z["z"].shape == (3,)
        assert torch.equal(z["z"], z["z_init"]) == (got["train", "best_step"] == 0), f"{det}/{task}"
        assert 0 <= got["test", "accuracy"] <= 1 and got["train", "trainable_params"] == 3
        assert got["train", "z_norm_start"] == pytest.approx(float(z["z_init"].norm()))
        history = load_table(run / "history.parquet")
        assert list(history.step) == [0, 4, 8, 12] and set(history.lr) == {0.1}  # tiny.yaml: 12 steps, every 4
        preds = load_table(run / "predictions.parquet")
        assert set(preds.point) == {"init", "best"} and len(preds) == 2 * 32
    control = load_space(results / "subspace" / "random-d3" / "projections.safetensors")
    for det in dets:  # the control: the found one's size and column norms, other directions
        p, q = space.subspace.projections[det], control.subspace.projections[det]
        assert torch.allclose(q.double().norm(dim=0), p.double().norm(dim=0), rtol=1e-5) and not torch.allclose(p, q)
    merged = load_table(results / "merge" / "lora" / "mr.parquet")
    assert merged.kept.sum() == 1 and list(merged.scale) == [0.5, 1.0, 2.0, 4.0] and merged.sources.iloc[0] == 3

    transfer = load_table(results / "transfer" / "svd-d3" / "mr" / "seed0.parquet")
    pairs = transfer[transfer.metric == "accuracy"][["source", "target"]]
    assert len(pairs) == len(dets) ** 2 and len(pairs.drop_duplicates()) == len(dets) ** 2
    # a code decoded with its own DET is the subspace solution: transfer's diagonal is that DET's own test
    # accuracy from optimize_subspace (taken from its metrics, not evaluated twice)
    for det in dets:
        own = load_table(results / "optimized" / "svd-d3" / det / "mr" / "seed0" / "metrics.parquet")
        want = own[(own.split == "test") & (own.metric == "accuracy")].value.item()
        got = transfer[(transfer.source == det) & (transfer.target == det) & (transfer.metric == "accuracy")]
        assert got.value.item() == pytest.approx(want), det

    land = load_table(results / "landscape" / "svd-d3" / "mr.parquet")
    assert list(land.columns) == ["space", "task", "seed", "a", "b", "det", "metric", "value"]
    assert len(land[land.metric == "accuracy"]) == 3 * 3 * len(dets)
    sol = load_table(results / "landscape" / "svd-d3" / "mr.solutions.parquet")
    assert list(sol.det) == ["adapter", "lora", "prefix"]  # by default the paper's three span the plane
    assert (results / "landscape" / "svd-d3" / "mr.png").stat().st_size > 1000

    report = results / "report"
    table = load_table(report / "subspace.parquet")
    assert set(table.task) == {"sst2", "mr"} and set(table[~table.seen].task) == {"mr"}
    assert (table.relative - table.subspace / table.original).abs().max() < 1e-12
    index = (report / "index.md").read_text()
    for heading in ("Optimisation in the subspace", "Cross-DET transfer", "Landscape", "svd-d3", "lora -> adapter"):
        assert heading in index
    assert "../landscape/svd-d3/mr.png" in index
    for name in ("relative.png", "dims.png", "curves.png", "index.html", "transfer.md", "landscape.parquet",
                 "headline.md", "gaps.parquet", "norms.md"):
        assert (report / name).stat().st_size > 0
    headline = load_table(report / "headline.parquet")
    assert set(zip(headline.det, headline.space, headline.control)) == {(d, "svd-d3", "random-d3") for d in dets}
    assert index.index("## The answer") < index.index("## Found subspace against the random one")


class Page(HTMLParser):
    """What a reader's browser gets from index.html: the tables (rows of cell texts), the images' sources,
    the headings and links, in page order."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.headings, self.links, self.order = [], [], [], [], []
        self._cell = self._heading = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
            self.order.append("table")
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
            self.order.append("img")
        elif tag in ("h1", "h2", "summary"):
            self._heading = ""
        elif tag in ("a", "link", "script"):
            self.links.append(attrs.get("href") or attrs.get("src") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None
        elif tag in ("h1", "h2", "summary") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self.order.append(f"heading {self._heading.strip()}")
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading += data


def test_the_report_page_opens_with_the_answer_and_carries_its_plots(tiny_run):
    report = tiny_run / "results" / "report"
    page = Page((report / "index.html").read_text())
    first = page.tables[0]
    assert first[0][:4] == ["DET", "task", "subspace", "original"] and {"found", "random", "zero-shot"} <= set(first[0])
    assert {row[0] for row in first[1:]} == set(DETS) and {row[1] for row in first[1:]} == {"mr"}
    answer, plots = page.order.index("heading The answer"), page.order.index("heading Plots")
    assert answer < page.order.index("table") < plots  # the answer, the headline table, then the pictures
    assert len(page.images) >= 4 and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:  # embedded, whole PNGs: the file reads the same after a copy, without a network
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [link for link in page.links if link and not link.startswith("#")]  # nothing fetched from elsewhere
    cells = [cell for table in page.tables for row in table for cell in row]
    assert len(page.tables) >= 8 and not [c for c in cells if re.search(r"\bnan\b", c, re.IGNORECASE)]
    assert "The DETs in their original space" in page.headings  # a folded section's heading
    assert "(1 seed)" in (report / "original.md").read_text()  # one seed: said, not a NaN spread
    index = (report / "index.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", index):  # the Markdown page's images lie where it says
        assert (report / link).is_file(), link


def test_report_tables_in_the_papers_form(tiny_run):
    report = tiny_run / "results" / "report"
    paper = (report / "paper.md").read_text()
    assert "mr (SST-2 -> Rotten Tomatoes)" in paper and "/ 101.8 (" in paper  # the paper's adapter number
    for det in DETS:
        assert f"| {det}" in paper  # every DET in every table, finetune, prompt and BitFit included
    original = load_table(report / "original.parquet")
    assert set(original.det) == set(DETS) and set(original.seeds) == {1}
    assert "random-d3 against svd-d3" in (report / "methods.md").read_text()  # the control beside svd


def test_learned_reuses_the_solutions_and_feeds_the_later_stages(tiny_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    settings = {"steps": 4, "init": "svd", "log_every": 2, "batch_size": 4}
    config = tiny_with(tmp_path, "learned.yaml", lambda c: c["subspace"].update(methods=["svd", "learned"],
                                                                                 learned=settings))
    target = "results/optimized/learned-d3/finetune/mr/seed0/z.safetensors"
    dry = snakemake(work, config, "--dry-run", target)
    assert scheduled(dry) == {"results/subspace/learned-d3/projections.safetensors", target}, dry.stdout[-2000:]
    result = snakemake(work, config, target)
    assert result.returncode == 0, result.stderr[-3000:]
    learned = load_space(work / "results" / "subspace" / "learned-d3" / "projections.safetensors")
    svd = load_space(work / "results" / "subspace" / "svd-d3" / "projections.safetensors")
    assert learned.subspace.method == "learned" and learned.meta["rows"] == svd.meta["rows"]
    for det in DETS:
        assert learned.subspace.projections[det].shape == svd.subspace.projections[det].shape
        assert torch.equal(learned.inits[det], svd.inits[det])
    history = load_table(work / "results" / "subspace" / "learned-d3" / "history.parquet")
    assert set(history.det) == set(DETS) and list(history.step.unique()) == [2, 4]
    z, meta = load_tensors(work / target)
    assert z["z"].shape == (3,) and meta["space"] == "learned-d3"


def test_snakemake_report_gathers_the_plots(tiny_run):
    result = snakemake(tiny_run, TINY, "--report", "report.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(tiny_run / "report.zip").namelist()
    for plot in ("relative.png", "dims.png", "mr.png", "index.html"):
        assert any(n.endswith(plot) for n in names), plot


def test_nothing_to_do_after_a_run(tiny_run):
    assert_nothing_to_be_done(snakemake(tiny_run, TINY, "--dry-run"))


REPORT = "results/report/pooled.parquet"  # the report job's first output, as a dry run names it
SUBSPACE_JOBS = {  # tiny: one subspace (svd, d=3) and its control, optimised on sst2 and mr, landscape on mr
    *{f"results/subspace/{space}/projections.safetensors" for space in ("svd-d3", "random-d3")},
    *{f"results/optimized/{space}/{det}/{task}/seed0/z.safetensors"
      for space in ("svd-d3", "random-d3") for det in DETS for task in ("sst2", "mr")},
    *{f"results/transfer/{space}/{task}/seed0.parquet" for space in ("svd-d3", "random-d3") for task in ("sst2", "mr")},
    "results/landscape/svd-d3/mr.parquet",
    REPORT,
}


def test_one_det_change_reruns_only_that_det_and_what_it_feeds(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "lora_r.yaml", lambda c: c["dets"]["lora"].update(r=3))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert scheduled(result) == {
        *{f"results/dets/lora/{task}/seed0/delta.safetensors" for task in ("sst2", "rte", "cr", "mr")},
        "results/stacked/lora.safetensors",
        *{f"results/merge/lora/{task}.parquet" for task in ("sst2", "mr")},  # the merge of lora's sources
        *SUBSPACE_JOBS,  # the shared subspace changes with any DET's solutions
    }


def test_landscape_change_reruns_only_landscape_and_report(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "grid.yaml", lambda c: c["landscape"].update(grid=4))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert scheduled(result) == {"results/landscape/svd-d3/mr.parquet", REPORT}


def test_held_out_change_keeps_the_training(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "held.yaml", lambda c: c["subspace"].update(held_out=["sst2"]))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    jobs = scheduled(result)
    assert "results/subspace/svd-d3/projections.safetensors" in jobs
    assert not [p for p in jobs if p.startswith(("results/dets/", "results/stacked/"))]


def test_several_dims_give_one_subspace_each_and_planes_from_two(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "dims.yaml", lambda c: c["subspace"].update(dims=[1, 3]))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    jobs = scheduled(result)
    assert {p for p in jobs if p.startswith("results/subspace/")} == {
        "results/subspace/svd-d1/projections.safetensors", "results/subspace/random-d1/projections.safetensors"}
    assert {"results/transfer/svd-d1/mr/seed0.parquet", "results/transfer/random-d1/mr/seed0.parquet"} <= jobs
    assert not [p for p in jobs if p.startswith("results/landscape/")]  # a line has no plane; d3 is done


def test_both_offsets_run_side_by_side_each_with_its_control(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "offsets.yaml", lambda c: c["subspace"].update(offsets=["init", "mean"], dims=[2]))
    jobs = scheduled(snakemake(tiny_run, changed, "--dry-run"))
    spaces = {p.split("/")[2] for p in jobs if p.startswith("results/subspace/")}
    assert spaces == {"svd-d2", "svd-mean-d2", "random-d2", "random-mean-d2"}
    assert {p.split("/")[2] for p in jobs if p.startswith("results/landscape/")} == {"svd-d2", "svd-mean-d2"}
    assert not [p for p in jobs if p.startswith(("results/dets/", "results/stacked/", "results/merge/"))]


def test_an_added_unseen_task_gets_its_controls_and_baselines(tmp_path):
    """What a user (or a check) does: one more task, held out; the default optimises the held-out tasks."""
    def add(c):
        c["tasks"].append({"name": "trec", "source": "file", "path": "trec"})
        c["subspace"].update(held_out=["mr", "trec"], tasks=None)

    jobs = scheduled(snakemake(tmp_path, tiny_with(tmp_path, "ood.yaml", add), "--dry-run"))
    for det in DETS:
        for space in ("svd-d3", "random-d3"):
            assert f"results/optimized/{space}/{det}/trec/seed0/z.safetensors" in jobs
        assert f"results/merge/{det}/trec.parquet" in jobs and f"results/dets/{det}/trec/seed0/delta.safetensors" in jobs
    assert not [p for p in jobs if "/sst2/" in p and p.startswith("results/optimized/")]  # seen: not optimised


def test_shared_change_reruns_every_det(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "epochs.yaml", lambda c: c["train"].update(epochs=2))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    dets = {m.group(1) for p in scheduled(result) if (m := re.match(r"results/dets/([^/]+)/", p))}
    assert dets == set(yaml.safe_load(TINY.read_text())["dets"])


def test_new_seed_adds_jobs_and_threads_and_checkpoints_rerun_nothing(tiny_run, tmp_path):
    # threads and checkpoint_minutes decide how a job runs, not what it computes
    change = {"seeds": [0, 1], "threads": 2, "checkpoint_minutes": 1}
    changed = tiny_with(tmp_path, "seeds.yaml", lambda c: c["train"].update(change))
    result = snakemake(tiny_run, changed, "--dry-run")
    trained = {p for p in scheduled(result) if p.startswith("results/dets/")}
    assert trained and all("/seed1/" in p for p in trained)


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tiny_with(tmp_path, "bad.yaml", lambda c: c["dets"]["lora"].update(r=0))
    result = snakemake(tmp_path, bad)
    assert result.returncode != 0
    assert "dets.lora.r" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_only_the_configs_names_fill_a_wildcard(tmp_path):
    # "c.r" is a task of this config; neither "cXr" (what an unescaped "." would let through), a path that
    # climbs out of results/ nor an unknown DET names a job
    def dotted(c):
        c["tasks"][2]["name"] = "c.r"

    config = tiny_with(tmp_path, "dotted.yaml", dotted)
    assert snakemake(tmp_path, config, "--dry-run", "results/dets/lora/c.r/seed0/delta.safetensors").returncode == 0
    for target in ("results/dets/lora/cXr/seed0/delta.safetensors",
                   "results/dets/lora/c.r/seed0/../../../../x/seed0/delta.safetensors",
                   "results/dets/lo.a/c.r/seed0/delta.safetensors"):
        result = snakemake(tmp_path, config, "--dry-run", target)
        assert result.returncode != 0 and "MissingRuleException" in result.stdout + result.stderr, target


def test_new_task_trains_only_its_own_runs(tiny_run, tmp_path):
    def add(c):
        c["tasks"].append({"name": "subj", "source": "file", "path": "subj"})

    result = snakemake(tiny_run, tiny_with(tmp_path, "task.yaml", add), "--dry-run")
    assert result.returncode == 0, result.stderr
    trained = {p for p in scheduled(result) if p.startswith("results/dets/")}
    assert trained == {f"results/dets/{det}/subj/seed0/delta.safetensors"
                       for det in DETS}


def library_copy(tmp_path: Path) -> Path:
    """The workflow (Snakefile, rules, scripts, library) copied, so that a test can change its code."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "workflow", copy / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", copy / "Snakefile")
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")  # data.root is ../shared/tasks beside the Snakefile
    return copy


def test_comments_and_docstrings_rerun_nothing(tiny_run, tmp_path):
    repo = library_copy(tmp_path)
    path = repo / "workflow" / "deltaspace" / "train.py"
    text = path.read_text().replace('"""Train one DET', '"""Reworded: train one DET', 1)
    path.write_text("# a new comment\n" + text.replace("\n\n\n", "\n\n\n# and another\n\n", 1))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tiny_run),
           "--configfile", str(TINY), "--cores", "2", "--dry-run"]
    assert_nothing_to_be_done(subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False))


@pytest.mark.parametrize(
    ("module", "rerun"),
    [
        ("tables.py", {REPORT}),
        ("landscape.py", {"results/landscape/svd-d3/mr.parquet", REPORT}),
        ("stages/stack_deltas.py", None),  # every stack, and all that follows from them
    ],
)
def test_library_change_reruns_the_stages_that_use_it(tiny_run, tmp_path, module, rerun):
    repo = library_copy(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tiny_run),
           "--configfile", str(TINY), "--cores", "2", "--dry-run"]
    assert_nothing_to_be_done(subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False))
    path = repo / "workflow" / "deltaspace" / module
    path.write_text(path.read_text() + "\n_A_CHANGE = 1\n")
    changed = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert changed.returncode == 0, changed.stderr[-3000:]
    jobs = scheduled(changed)
    if rerun is not None:
        assert jobs == rerun
    else:
        assert not [p for p in jobs if p.startswith("results/dets/")]
        assert {p for p in jobs if p.startswith("results/stacked/")} == {
            f"results/stacked/{det}.safetensors" for det in DETS}
