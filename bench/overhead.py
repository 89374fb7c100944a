"""Workflow overhead: what Snakemake and our rules cost apart from the jobs themselves.

Three measurements, each the wall time of one `snakemake` command run as a user runs it (a subprocess of
this Python, `python -m snakemake`), each returned as a plain dict for the benchmark table (`seconds`: wall,
`cpu_seconds`: user + system time of the command, steadier on a shared machine; `jobs`; `command`; `log`):

- dry_run_seconds: `snakemake -n` of a config in a workdir (the DAG of a fresh workdir: every job), e.g. the
  paper-scale DAG written by paper_scale_config (160 tasks x 3 DETs x 4 seeds, then every later stage);
- noop_rerun_seconds: `snakemake` on a finished workdir (nothing to be done);
- end_to_end: the whole workflow from scratch in a fresh workdir.

What each command printed (stdout and stderr together) is kept in a log file in the workdir
(`overhead-<kind>.log`), named in the returned dict.

    import overhead                                        # from a script in bench/
    cfg = overhead.paper_scale_config("/tmp/scratch")
    overhead.dry_run_seconds(cfg, "/tmp/scratch/paper")    # {"seconds": ..., "jobs": 7055, ...}
"""
from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TASKS_DIR = (ROOT.parent / "shared" / "tasks").resolve()  # data.root of config.yaml (../shared/tasks)

PAPER_TASKS = 160
PAPER_SEEDS = [0, 1, 2, 3]
PAPER_DIMS = [4, 8]
PAPER_HELD_OUT = 4  # the last tasks of the list never enter the subspace; the landscape sweeps them


class OverheadError(RuntimeError):
    """A snakemake command failed, or did not do what the measurement needs (the tail of its log says why)."""


def paper_scale_config(path, optimize_seeds: list[int] | None = None) -> Path:
    """Write a paper-scale config (`paper_scale.yaml` in the folder `path`) and return its path.

    config.yaml's backbone, data, train and DETs (lora, adapter, prefix), with 160 tasks: the 15 Parquet tasks
    of ../shared/tasks under 160 distinct names (`sst2_007`: the 8th copy, in file order), train.seeds
    [0, 1, 2, 3], subspaces svd of d 4 and 8 built from every task but the last four (held out), every task
    optimised in them from `optimize_seeds` (None: from every training seed), and the landscape on the
    held-out tasks. It validates.
    """
    sources = sorted(p.name for p in TASKS_DIR.iterdir() if p.is_dir() and any(p.glob("train.*")))
    if not sources:
        raise OverheadError(f"no task folders in {TASKS_DIR}")
    tasks, copies = [], {}
    for i in range(PAPER_TASKS):
        source = sources[i % len(sources)]
        copies[source] = copies.get(source, -1) + 1
        tasks.append({"name": f"{source}_{copies[source]:03d}", "source": "file", "path": source})
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    cfg["data"]["root"] = str(TASKS_DIR)
    cfg["tasks"] = tasks
    cfg["train"]["seeds"] = list(PAPER_SEEDS)
    held_out = [task["name"] for task in tasks[-PAPER_HELD_OUT:]]
    cfg["subspace"] = {"methods": ["svd"], "dims": list(PAPER_DIMS), "held_out": held_out, "tasks": None,
                       "seeds": optimize_seeds, "optimize": cfg["subspace"].get("optimize", {})}
    cfg["landscape"] = {**cfg["landscape"], "enabled": True, "dets": ["adapter", "lora", "prefix"], "tasks": None}
    cfg["report"] = {"paper": None, "paper_rows": {}}
    out = Path(path) / "paper_scale.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Paper-scale DAG for bench/overhead.py (written by paper_scale_config; do not edit).\n"
                   + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return out


def dry_run_seconds(configfile, workdir) -> dict:
    """`snakemake -n` of `configfile` in `workdir`: {"seconds": wall, "jobs": jobs it would run, ...}.

    The config check reads each file task in full the first time this machine sees it (then it remembers
    the pass, deltaspace.config.taskcheck.check_task_cached): the paper-scale config's first dry run is ~5 s slower.
    Call it twice for the warm time, or set DELTASPACE_CACHE to an empty folder for the cold one.
    """
    args = ["-n", "--quiet", "rules", "host", "reason"]  # keep only the job-count table
    result, output = _snakemake("dry-run", workdir, configfile, args)
    return result | {"jobs": _job_count(output)}


def noop_rerun_seconds(workdir, configfile) -> dict:
    """`snakemake --cores 2` on the finished `workdir`: {"seconds": wall, "jobs": 0, ...}.

    A dry run first (not timed) makes sure nothing would run: an unfinished workdir raises OverheadError
    before any job starts, and so does a timed run that did anything but "Nothing to be done".
    """
    check, output = _snakemake("noop-check", workdir, configfile, ["-n", "--quiet", "rules", "host"])
    pending = _job_count(output)
    if pending or "Nothing to be done" not in output:
        raise OverheadError(f"{workdir} is not finished: a rerun would run {pending} jobs (see {check['log']})")
    result, output = _snakemake("noop-rerun", workdir, configfile, [])
    if "Nothing to be done" not in output or _steps_done(output):
        raise OverheadError(f"the rerun in {workdir} ran jobs: it was no no-op (see {result['log']})"
                            + _tail(output))
    return result | {"jobs": 0}


def end_to_end(workdir, configfile, cores=2) -> dict:
    """The whole workflow from scratch in the fresh folder `workdir`: {"seconds": wall, "jobs": jobs run, ...}."""
    workdir = Path(workdir)
    if (workdir / "results").exists() or (workdir / ".snakemake").exists():
        raise OverheadError(f"{workdir} is not fresh (it holds results/ or .snakemake/): use an empty folder")
    result, output = _snakemake("end-to-end", workdir, configfile, [], cores=cores, timeout=6 * 3600)
    done = _steps_done(output)
    if done is None or done[0] != done[1]:
        raise OverheadError(f"the run in {workdir} did not finish every job (see {result['log']})" + _tail(output))
    return result | {"jobs": done[1]}


# ------------------------------------------------------------------------------------------------ helpers


def _snakemake(kind: str, workdir, configfile, args: list[str], cores: int = 2,
               timeout: float = 1800) -> tuple[dict, str]:
    """Run one snakemake command, its output in <workdir>/overhead-<kind>.log; raise on failure."""
    workdir, configfile = Path(workdir).resolve(), Path(configfile).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), "--configfile", str(configfile), *args]
    log = workdir / f"overhead-{kind}.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              check=False, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        log.write_text(out, encoding="utf-8")
        raise OverheadError(f"{kind}: no answer within {timeout} s (see {log})" + _tail(out)) from exc
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    log.write_text(f"$ {' '.join(cmd)}\n# exit {proc.returncode}, {seconds:.2f} s\n{proc.stdout}", encoding="utf-8")
    if proc.returncode != 0:
        raise OverheadError(f"{kind}: snakemake exited with {proc.returncode} (see {log})" + _tail(proc.stdout))
    return {"what": kind, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "command": " ".join(cmd),
            "log": str(log)}, proc.stdout


def _job_count(output: str) -> int:
    """The `total` row of the first "Job stats" table (0 when there is none: nothing to be done)."""
    match = re.search(r"^Job stats:\n(?:.*\n)*?total\s+(\d+)\s*$", output, re.MULTILINE)
    if match:
        return int(match.group(1))
    if "Nothing to be done" in output:
        return 0
    raise OverheadError("no job count in snakemake's output" + _tail(output))


def _steps_done(output: str) -> tuple[int, int] | None:
    """(done, total) of the last "N of M steps (P%) done" line, None when no job ran."""
    found = re.findall(r"^(\d+) of (\d+) steps \(\d+%\) done", output, re.MULTILINE)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def _tail(output: str, lines: int = 40) -> str:
    return "\n--- last lines of the log:\n" + "\n".join(output.splitlines()[-lines:])
