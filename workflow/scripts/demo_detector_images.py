from rs5m.adapter import run
from rs5m.demo.demo_detector_images import write_detector_images

run(
    snakemake,
    write_detector_images,
    rs_dir=snakemake.output.rs,
    other_dir=snakemake.output.other,
    per_class=snakemake.params.per_class,
)
