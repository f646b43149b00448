from rs5m.adapter import run
from rs5m.rs3.rs3_caption import caption_part

rotations = snakemake.params.rotations
run(
    snakemake,
    caption_part,
    in_path=snakemake.input.part,
    out_path=snakemake.output.table,
    candidates_path=snakemake.output.candidates,
    blip2=snakemake.params.blip2,
    clip_a=snakemake.params.clip_a,
    clip_b=snakemake.params.clip_b,
    num_candidates=snakemake.params.num_candidates,
    top_k=snakemake.params.top_k,
    top_p=snakemake.params.top_p,
    max_length=snakemake.params.max_length,
    keep_a=snakemake.params.clip_a["keep"],
    keep_b=snakemake.params.clip_b["keep"],
    rotation_count=rotations["count"],
    rotation_step=rotations["step_degrees"],
    rotation_model=rotations["model"],
    batch_size=snakemake.params.batch_size,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    reduced_decode=snakemake.params.reduced_decode,
)
