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
        code=code("decompose"),
        method="svd",
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
        code=code("decompose"),
        method="learned",
        held_out=SUB["held_out"],
        dets=DETS,
        data=CFG["data"],
        tasks={task: plan.task_config(CFG, task) for task in TASKS if task not in SUB["held_out"]},
        learned=SUB["learned"],
        device=DEVICE,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/decompose.py"
