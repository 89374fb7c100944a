rule optimize_subspace:
    """Train only the code z (dim numbers) of one DET in the subspace on one task."""
    input:
        space="results/subspace/{space}/projections.safetensors",
    output:
        z="results/optimized/{space}/{det}/{task}/seed{seed}/z.safetensors",
        metrics="results/optimized/{space}/{det}/{task}/seed{seed}/metrics.parquet",
        history="results/optimized/{space}/{det}/{task}/seed{seed}/history.parquet",
        predictions="results/optimized/{space}/{det}/{task}/seed{seed}/predictions.parquet",
    log:
        "results/logs/optimize_subspace/{space}/{det}/{task}/seed{seed}.log",
    params:
        code=code("optimize_subspace"),
        det=lambda wc: plan.det_config(CFG, wc.det),
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: plan.task_config(CFG, wc.task),
        optimize=SUB["optimize"],
        device=DEVICE,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/optimize_subspace.py"
