rule stack_deltas:
    """One float32 row per (task, seed): the DET's trained minus initial tensors, with their layout."""
    input:
        deltas=per_run("delta.safetensors"),
        metrics=per_run("metrics.parquet"),
    output:
        stacked="results/stacked/{det}.safetensors",
        index="results/stacked/{det}.parquet",
    log:
        "results/logs/stack_deltas/{det}.log",
    params:
        code=code("stack_deltas"),
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/stack_deltas.py"
