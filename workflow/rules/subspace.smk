rule decompose:
    """Jointly decompose the seen solutions of every DET into one subspace of `dim` dimensions (closed form)."""
    input:
        stacked=expand("results/stacked/{det}.safetensors", det=DETS),
        index=expand("results/stacked/{det}.parquet", det=DETS),
    output:
        projections="results/subspace/svd-d{dim}/projections.safetensors",
        codes="results/subspace/svd-d{dim}/codes.parquet",
        reconstruction="results/subspace/svd-d{dim}/reconstruction.parquet",
    log:
        "results/logs/decompose/svd-d{dim}.log",
    params:
        code=CODE["decompose"],
        held_out=SUB["held_out"],
        dets=DETS,
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/decompose.py"


rule decompose_learned:
    """The paper's way: per-DET projections trained with the frozen backbone's task loss on the seen tasks."""
    input:
        stacked=expand("results/stacked/{det}.safetensors", det=DETS),
        index=expand("results/stacked/{det}.parquet", det=DETS),
    output:
        projections="results/subspace/learned-d{dim}/projections.safetensors",
        codes="results/subspace/learned-d{dim}/codes.parquet",
        reconstruction="results/subspace/learned-d{dim}/reconstruction.parquet",
        history="results/subspace/learned-d{dim}/history.parquet",
    log:
        "results/logs/decompose/learned-d{dim}.log",
    params:
        code=CODE["decompose_learned"],
        held_out=SUB["held_out"],
        dets=DETS,
        data=CFG["data"],
        tasks={task: task_config(CFG, task) for task in TASKS if task not in SUB["held_out"]},
        learned=SUB["learned"] | {"device": CFG["train"]["device"]},
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/decompose.py"


rule optimize_subspace:
    """Train only the code z (dim numbers) of one DET in the subspace on one task."""
    input:
        space="results/subspace/{space}/projections.safetensors",
    output:
        z="results/optimized/{space}/{det}/{task}/seed{seed}/z.safetensors",
        metrics="results/optimized/{space}/{det}/{task}/seed{seed}/metrics.parquet",
    log:
        "results/logs/optimize_subspace/{space}/{det}/{task}/seed{seed}.log",
    params:
        code=CODE["in_subspace"],
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: task_config(CFG, wc.task),
        optimize=OPTIMIZE,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/optimize_subspace.py"


rule transfer:
    """Each DET's code decoded with every DET's projection, evaluated on the task without more training."""
    input:
        space="results/subspace/{space}/projections.safetensors",
        z=codes_of(DETS),
        metrics=codes_of(DETS, name="metrics.parquet"),
    output:
        "results/transfer/{space}/{task}/seed{seed}.parquet",
    log:
        "results/logs/transfer/{space}/{task}/seed{seed}.log",
    params:
        code=CODE["in_subspace"],
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: task_config(CFG, wc.task),
        eval=EVAL,
        dets=DETS,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/transfer.py"


rule landscape:
    """Every DET on a square grid over the plane through two or three DETs' codes for one task."""
    input:
        space="results/subspace/{space}/projections.safetensors",
        z=codes_of(LAND_DETS, seeds=LAND_SEED),
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
        code=CODE["landscape"],
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: task_config(CFG, wc.task),
        settings={key: value for key, value in LAND.items() if key not in ("dets", "tasks", "enabled")},
        eval=EVAL,
        dets=LAND_DETS,
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
