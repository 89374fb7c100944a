# The subspaces' folders: results/subspace/{space}/, {space} a name of deltaspace.names (svd-d4, svd-mean-d4,
# random-d4, learned-d4, svd-d4-f0, ...): the method, the offset, the dimension and the fold are read from it.


rule audit:
    """The leakage audit: the share of each task's texts found in each other task; fails, before any subspace
    is built, when an unseen task's texts reach one of its subspace's source tasks. Its table is a plain input
    of decompose and merge, not an ancient() one: Snakemake skips the params check of every job downstream of
    a rerun job, so behind ancient() a change of held_out would rerun the audit and nothing else."""
    output:
        table="results/audit/overlap.parquet",
    log:
        "results/logs/audit.log",
    params:
        code=code("audit"),
        tasks={task: plan.task_config(CFG, task) for task in TASKS},
        data=CFG["data"],
        groups=plan.unseen_groups(CFG),
        max_share=SUB["leakage"]["max_share"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/audit.py"


rule decompose:
    """Jointly decompose the seen solutions of every DET into one subspace (closed form, svd), or draw the
    random control of svd's subspace of the same dimension and offset."""
    input:
        stacked=expand("results/stacked/{det}.safetensors", det=DETS),
        index=expand("results/stacked/{det}.parquet", det=DETS),
        audit="results/audit/overlap.parquet",  # runs first (see the audit rule)
    output:
        projections="results/subspace/{space}/projections.safetensors",
        codes="results/subspace/{space}/codes.parquet",
        reconstruction="results/subspace/{space}/reconstruction.parquet",
    log:
        "results/logs/decompose/{space}.log",
    wildcard_constraints:
        space=r"(svd|random)(-mean)?-d\d+(-f\d+)?",
    params:
        code=code("decompose"),
        held_out=lambda wc: plan.held_out_of(CFG, wc.space),
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
        audit="results/audit/overlap.parquet",  # runs first (see the audit rule)
    output:
        projections="results/subspace/{space}/projections.safetensors",
        codes="results/subspace/{space}/codes.parquet",
        reconstruction="results/subspace/{space}/reconstruction.parquet",
        history="results/subspace/{space}/history.parquet",
    log:
        "results/logs/decompose/{space}.log",
    wildcard_constraints:
        space=r"learned(-mean)?-d\d+(-f\d+)?",
    params:
        code=code("decompose"),
        held_out=lambda wc: plan.held_out_of(CFG, wc.space),
        dets=DETS,
        data=CFG["data"],
        tasks=lambda wc: {task: plan.task_config(CFG, task) for task in TASKS
                          if task not in plan.held_out_of(CFG, wc.space)},
        learned={key: value for key, value in SUB["learned"].items() if key not in ("dims", "folds")},  # which jobs, not what
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
