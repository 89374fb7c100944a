rule report:
    """Tables in the paper's form and plots, from every stage's outputs, gathered in results/report/."""
    input:
        original=[f"results/dets/{det}/{task}/seed{seed}/metrics.parquet" for det in DETS for task, seed in RUNS],
        original_predictions=[f"results/dets/{det}/{task}/seed{seed}/predictions.parquet"
                              for det in DETS for task, seed in RUNS if task in OPT_TASKS],
        optimized=optimized("metrics.parquet"),
        histories=optimized("history.parquet"),
        predictions=optimized("predictions.parquet"),
        merge=expand("results/merge/{det}/{task}.parquet", det=DETS, task=OPT_TASKS),
        merge_predictions=expand("results/merge/{det}/{task}.predictions.parquet", det=DETS, task=OPT_TASKS),
        transfer=[f"results/transfer/{space}/{task}/seed{seed}.parquet" for space, task, seed in OPT_JOBS],
        landscape=[f"results/landscape/{space}/{task}.parquet" for space, task in LAND_JOBS],
        solutions=[f"results/landscape/{space}/{task}.solutions.parquet" for space, task in LAND_JOBS],
        overlap="results/audit/overlap.parquet",
        reconstruction=expand("results/subspace/{space}/reconstruction.parquet", space=SPACES),
        codes=expand("results/subspace/{space}/codes.parquet", space=SPACES),
        learned=[f"results/subspace/{space}/history.parquet" for space in SPACES if space.startswith("learned")],
    output:
        tables=REPORT["tables"],
        plots=[report(path, caption=f"../report/{Path(path).stem}.rst", category="Subspace") for path in REPORT["plots"]],
        markdown=REPORT["index"][0],
        html=report(REPORT["index"][1], caption="../report/tables.rst", category="Tables"),
    log:
        "results/logs/report.log",
    params:
        code=code("report"),
        held_out=plan.unseen(CFG),
        folds=plan.folds(CFG),
        threshold=LAND["threshold"],
        det_methods={det: CFG["dets"][det]["method"] for det in DETS},
        paper=CFG["report"]["paper"],
        paper_rows=CFG["report"]["paper_rows"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/report.py"
