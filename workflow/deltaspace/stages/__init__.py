"""The workflow's stages, one module per rule family, named after its rules (workflow/rules/<name>.smk, whose
script workflow/scripts/<name>.py is a thin call into the module's function of the same name):

    train_det -> stack_deltas -> decompose (svd, learned) -> optimize_subspace -> transfer, landscape -> report

Each stage function takes plain values and paths, so a stage can be run by hand."""
