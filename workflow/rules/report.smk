rule report:
    """Tables in the paper's form and plots, from every stage's outputs, gathered in results/report/."""
    input:
        original=expand("results/dets/{det}/{task}/seed{seed}/metrics.parquet", det=DETS, task=TASKS, seed=SEEDS),
        optimized=expand(
            "results/optimized/{space}/{det}/{task}/seed{seed}/metrics.parquet",
            space=SPACES, det=DETS, task=OPT_TASKS, seed=OPT_SEEDS,
        ),
        transfer=expand("results/transfer/{space}/{task}/seed{seed}.parquet", space=SPACES, task=OPT_TASKS, seed=OPT_SEEDS),
        landscape=expand("results/landscape/{space}/{task}.parquet", space=LAND_SPACES, task=LAND_TASKS),
        solutions=expand("results/landscape/{space}/{task}.solutions.parquet", space=LAND_SPACES, task=LAND_TASKS),
        reconstruction=expand("results/subspace/{space}/reconstruction.parquet", space=SPACES),
    output:
        tables=REPORT["tables"],
        relative=report("results/report/relative.png", caption="../report/relative.rst", category="Subspace"),
        dims=report("results/report/dims.png", caption="../report/dims.rst", category="Subspace"),
        markdown=REPORT["index"][0],
        html=report(REPORT["index"][1], caption="../report/tables.rst", category="Tables"),
    log:
        "results/logs/report.log",
    params:
        code=CODE["report"],
        held_out=SUB["held_out"],
        threshold=LAND["threshold"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/report.py"
