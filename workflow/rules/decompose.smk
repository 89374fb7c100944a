# The subspaces' folders: results/subspace/{space}/, {space} a name of deltaspace.names (svd-d4, svd-mean-d4,
# random-d4, learned-d4, ...): the method, the offset and the dimension are read from it.


rule decompose:
    """Jointly decompose the seen solutions of every DET into one subspace (closed form, svd), or draw the
    random control of svd's subspace of the same dimension and offset."""
    input:
        stacked=expand("results/stacked/{det}.safetensors", det=DETS),
        index=expand("results/stacked/{det}.parquet", det=DETS),
    output:
        projections="results/subspace/{space}/projections.safetensors",
        codes="results/subspace/{space}/codes.parquet",
        reconstruction="results/subspace/{space}/reconstruction.parquet",
    log:
        "results/logs/decompose/{space}.log",
    wildcard_constraints:
        space=r"(svd|random)(-mean)?-d\d+",
    params:
        code=code("decompose"),
        held_out=SUB["held_out"],
        control_seed=lambda wc: SUB["control_seed"] if wc.space.startswith("random") else None,  # svd's: none
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
        projections="results/subspace/{space}/projections.safetensors",
        codes="results/subspace/{space}/codes.parquet",
        reconstruction="results/subspace/{space}/reconstruction.parquet",
        history="results/subspace/{space}/history.parquet",
    log:
        "results/logs/decompose/{space}.log",
    wildcard_constraints:
        space=r"learned(-mean)?-d\d+",
    params:
        code=code("decompose"),
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
