"""deltaspace's benchmarks, side by side with what a user would otherwise write, in one run:

    .venv/bin/python bench/run.py                 everything (about 25 minutes on 2 CPU cores)
    .venv/bin/python bench/run.py --only model    the model-side comparisons (training, subspace step, landscape)
    .venv/bin/python bench/run.py --device cuda   the model side on a GPU (bf16)

Writes bench/results.md (the table) and bench/results.json (name, ours, baseline, ratio, units, machine, ...).
Scratch runs of the workflow go to bench/work/ (git-ignored). Benchmarks, not tests: nothing here fails
because a machine is slow; a missed target shows as "no" in the table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from common import ROOT, Row, default_config, machine, matmul_peak

from deltaspace.decoded import points_per_pass
from deltaspace.models import select_device

OUT = ROOT / "bench"
WORK = OUT / "work"
PARTS = ("model", "workflow")


def model_rows(cfg: dict, device: torch.device, where: str, peak: float, dets: list[str]) -> tuple[list[Row], dict]:
    import model

    rows, details = [], {}

    def share(flops_per_s: float) -> float:
        return flops_per_s / peak

    print("== DET training: deltaspace against transformers Trainer + peft (LoRA)", flush=True)
    model.reset_memory(device)
    base = model.trainer_training(cfg, "lora", device)
    base["peak_gib"] = model.peak_memory(device)
    model.reset_memory(device)
    ours = model.ours_training(cfg, "lora", device)
    ours["peak_gib"] = model.peak_memory(device)
    details["training"] = {"ours": ours, "trainer": base}
    ours_flops = ours["flops"] * ours["useful"] / ours["seconds"]  # model FLOPs: padding not counted
    base_flops = base["flops"] * base["useful"] / base["seconds"]
    rows.append(Row("DET training, LoRA", ours["examples_per_s"], base["examples_per_s"], "examples/s", ">= 1.3x",
                    ours["examples_per_s"] >= 1.3 * base["examples_per_s"], where, share(ours_flops),
                    share(base_flops), f"{ours['examples']} examples; real tokens {ours['useful']:.0%} of those "
                    f"run (Trainer {base['useful']:.0%})"))
    rows.append(Row("DET training, LoRA: model FLOP/s", ours_flops / 1e9, base_flops / 1e9, "GFLOP/s",
                    ">= 40% of peak", share(ours_flops) >= 0.40, where, share(ours_flops), share(base_flops),
                    "FlopCounterMode FLOPs x real-token share / wall seconds"))

    for det in dets:
        print(f"== subspace step against the original step: {det}", flush=True)
        step = model.step_seconds(cfg, det, device)
        details[f"step/{det}"] = step
        sub, orig = step["subspace"], step["original"]
        rows.append(Row(f"subspace step, {det}", sub["seconds"], orig["seconds"], "s/step", "<= 1.2x",
                        sub["seconds"] <= 1.2 * orig["seconds"], where, share(sub["flops"] / sub["seconds"]),
                        share(orig["flops"] / orig["seconds"]), "d = 4, batch of the default's train.batch_size"))

    print("== landscape sweep against a point-by-point loop (LoRA)", flush=True)
    sweep = model.landscape_sweep(cfg, "lora", device)
    details["landscape"] = sweep
    used = points_per_pass(device)
    ours_rate, naive = sweep["per_pass"][used]["points_per_s"], sweep["naive_points_per_s"]
    others = ", ".join(f"{k}: {v['points_per_s']:.2f}" for k, v in sweep["per_pass"].items())
    rows.append(Row("landscape sweep, LoRA", ours_rate, naive, "grid points/s", ">= 5x", ours_rate >= 5 * naive, where,
                    share(sweep["flops_per_point"] * ours_rate), share(sweep["flops_per_point"] * naive),
                    f"{used} point(s) per pass as the workflow runs it (points per pass -> points/s: {others}); "
                    f"{sweep['examples']} test examples per point; predictions agree "
                    f"{min(v['agreement'] for v in sweep['per_pass'].values()):.1%}"))
    return rows, details


def workflow_rows(cores: int, where: str) -> tuple[list[Row], dict]:
    import overhead

    rows, details = [], {}
    default = WORK / "default"
    shutil.rmtree(default, ignore_errors=True)
    default.mkdir(parents=True)
    print(f"== the embedded default end to end on {cores} cores (in {default})", flush=True)
    e2e = overhead.end_to_end(default, ROOT / "config.yaml", cores=cores)
    rows.append(Row("default end to end", e2e["seconds"], None, "s", "< 900 s", e2e["seconds"] < 900, where,
                    note=f"{e2e['jobs']} jobs, snakemake --cores {cores}"))
    print("== no-op rerun of the finished default", flush=True)
    noop = overhead.noop_rerun_seconds(default, ROOT / "config.yaml")
    rows.append(Row("no-op rerun of the default", noop["seconds"], None, "s", "< 5 s", noop["seconds"] < 5, where,
                    note="everything up to date"))
    for name, seeds in (("paper", [0]), ("paper-every-seed", None)):
        print(f"== dry run of a paper-scale DAG ({name})", flush=True)
        folder = WORK / name
        shutil.rmtree(folder, ignore_errors=True)
        config = overhead.paper_scale_config(folder, optimize_seeds=seeds)
        overhead.dry_run_seconds(config, folder)  # the first one also checks the 160 task files (then cached)
        dry = overhead.dry_run_seconds(config, folder)
        how = "from seed 0, as config.yaml does" if seeds else "from each of the 4 training seeds"
        rows.append(Row(f"dry run, paper-scale DAG ({'one' if seeds else 'every'} optimisation seed)",
                        dry["seconds"], None, "s", "< 20 s", dry["seconds"] < 20, where,
                        note=f"{dry['jobs']} jobs: {overhead.PAPER_TASKS} tasks x 3 DETs x "
                             f"{len(overhead.PAPER_SEEDS)} seeds of train_det, every task optimised {how}, "
                             "transfer, landscape, report; second run (the first checks the task files)"))
        details[f"dry_run/{name}"] = dry
    details |= {"end_to_end": e2e, "noop_rerun": noop}
    return rows, details


def _num(value) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(rows: list[Row], header: dict) -> str:
    lines = [(f"Measured {header['date']} on {header['machine']}; matmul peak {header['peak_gflops']:.1f} GFLOP/s "
             f"({header['peak_how']})."), "",
             "| comparison | ours | baseline | ratio | units | target | met | ours / peak | baseline / peak | note |",
             "|---|---:|---:|---:|---|---|---|---:|---:|---|"]
    for r in rows:
        share = [f"{s:.0%}" if s is not None else "" for s in (r.peak_share, r.baseline_peak_share)]
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append(f"| {r.name} | {_num(r.ours)} | {_num(r.baseline)} | {ratio} | {r.units} | {r.target} | "
                     f"{'yes' if r.met else 'no'} | {share[0]} | {share[1]} | {r.note} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=PARTS, help="run one part (default: both)")
    parser.add_argument("--device", default="cpu", help="the model side's device: cpu (default), cuda, auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the model side (default: the default config's train.threads)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores of the end-to-end run")
    parser.add_argument("--dets", default="lora,adapter,prefix", help="DETs of the subspace-step comparison")
    parser.add_argument("--out", default=str(OUT), help="folder of results.md and results.json")
    args = parser.parse_args()

    cfg = default_config()
    device = select_device(args.device)
    threads = args.threads or cfg["train"]["threads"] or 1
    torch.set_num_threads(threads)
    where = machine(device, threads)
    peak = matmul_peak(device)
    print(f"{where}: matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
    header = {"date": time.strftime("%Y-%m-%d"), "machine": where, "peak_gflops": peak / 1e9,
              "peak_how": "bf16 square matmul" if device.type == "cuda" else f"fp32 square matmul, {threads} thread(s)"}
    rows, details = [], {}
    if args.only in (None, "model"):
        part, more = model_rows(cfg, device, where, peak, args.dets.split(","))
        rows, details = rows + part, details | more
        write(Path(args.out), header, rows, details)  # what is measured is kept, whatever comes next
    if args.only in (None, "workflow"):
        part, more = workflow_rows(args.cores, machine(torch.device("cpu"), args.cores))
        rows, details = rows + part, details | more
    print(write(Path(args.out), header, rows, details))


def write(out: Path, header: dict, rows: list[Row], details: dict) -> str:
    """results.json and results.md in `out`; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"header": header, "rows": [r.as_dict() for r in rows], "details": details}
    (out / "results.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    text = markdown(rows, header)
    (out / "results.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
