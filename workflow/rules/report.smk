rule report:
    """Tables in the paper's form and plots, from every stage's outputs, gathered in results/report/."""
    input:
        original=[f"results/dets/{det}/{task}/seed{seed}/metrics.parquet" for det in DETS for task, seed in RUNS],
        optimized=[
            f"results/optimized/{space}/{det}/{task}/seed{seed}/metrics.parquet"
            for space in SPACES for det in DETS for task, seed in OPT_RUNS
        ],
        transfer=[f"results/transfer/{space}/{task}/seed{seed}.parquet" for space in SPACES for task, seed in OPT_RUNS],
        landscape=expand("results/landscape/{space}/{task}.parquet", space=LAND_SPACES, task=LAND_TASKS),
        solutions=expand("results/landscape/{space}/{task}.solutions.parquet", space=LAND_SPACES, task=LAND_TASKS),
        reconstruction=expand("results/subspace/{space}/reconstruction.parquet", space=SPACES),
    output:
        tables=REPORT["tables"],
        relative=report(REPORT["plots"][0], caption="../report/relative.rst", category="Subspace"),
        dims=report(REPORT["plots"][1], caption="../report/dims.rst", category="Subspace"),
        markdown=REPORT["index"][0],
        html=report(REPORT["index"][1], caption="../report/tables.rst", category="Tables"),
    log:
        "results/logs/report.log",
    params:
        code=code("report"),
        held_out=SUB["held_out"],
        threshold=LAND["threshold"],
        det_methods={det: CFG["dets"][det]["method"] for det in DETS},
        paper=CFG["report"]["paper"],
        paper_rows=CFG["report"]["paper_rows"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/report.py"
