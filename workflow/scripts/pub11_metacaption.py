from rs5m.adapter import run
from rs5m.pub11.pub11_metacaption import pub11_metacaptions
from rs5m.settings import MetacaptionSettings

run(
    snakemake,
    pub11_metacaptions,
    final=snakemake.input.final,
    urldedup_parts=list(snakemake.input.urldedup),
    out_path=snakemake.output.table,
    stats_path=snakemake.output.stats,
    settings=MetacaptionSettings.from_config(snakemake.params),
    cc3m_labels=snakemake.input.cc3m_labels[0] if snakemake.input.cc3m_labels else None,
    threads=snakemake.threads,
    memory_limit=snakemake.params.memory_limit,
)
