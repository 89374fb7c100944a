rule landscape:
    """Every DET on a square grid over the plane through two or three DETs' codes for one task."""
    input:
        space="results/subspace/{space}/projections.safetensors",
        z=codes_of(LAND_DETS, seeds=LAND_SEED),
        original=lambda wc: [f"results/dets/{det}/{wc.task}/seed{LAND_SEED[wc.task]}/metrics.parquet" for det in DETS],
    output:
        table="results/landscape/{space}/{task}.parquet",
        solutions="results/landscape/{space}/{task}.solutions.parquet",
        plot=report(
            "results/landscape/{space}/{task}.png",
            caption="../report/landscape.rst",
            category="Landscape",
            subcategory="{space}",
            labels={"task": "{task}", "subspace": "{space}"},
        ),
    log:
        "results/logs/landscape/{space}/{task}.log",
    params:
        code=code("landscape"),
        dets=dets_config(DETS),
        plane=LAND_DETS,
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: plan.task_config(CFG, wc.task),
        settings={key: value for key, value in LAND.items() if key not in ("dets", "tasks", "enabled")},
        eval_batch_size=CFG["train"]["eval_batch_size"],
        device=DEVICE,
        seed=lambda wc: LAND_SEED[wc.task],
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/landscape.py"
