# The subspaces' folders, with the {dim} wildcard: svd-d{dim}, learned-d{dim}.
SVD, LEARNED = with_dim_wildcard("svd"), with_dim_wildcard("learned")


rule decompose:
    """Jointly decompose the seen solutions of every DET into one subspace of `dim` dimensions (closed form)."""
    input:
        stacked=expand("results/stacked/{det}.safetensors", det=DETS),
        index=expand("results/stacked/{det}.parquet", det=DETS),
    output:
        projections=f"results/subspace/{SVD}/projections.safetensors",
        codes=f"results/subspace/{SVD}/codes.parquet",
        reconstruction=f"results/subspace/{SVD}/reconstruction.parquet",
    log:
        f"results/logs/decompose/{SVD}.log",
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
        projections=f"results/subspace/{LEARNED}/projections.safetensors",
        codes=f"results/subspace/{LEARNED}/codes.parquet",
        reconstruction=f"results/subspace/{LEARNED}/reconstruction.parquet",
        history=f"results/subspace/{LEARNED}/history.parquet",
    log:
        f"results/logs/decompose/{LEARNED}.log",
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
