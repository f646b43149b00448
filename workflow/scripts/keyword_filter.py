from rs5m.adapter import run
from rs5m.pub11.keyword_filter import filter_chunk
from rs5m.pub11.settings import MetadataSettings, SourceSettings

run(
    snakemake,
    filter_chunk,
    source=snakemake.wildcards.source,
    files=list(snakemake.input.files),
    output=snakemake.output.kept,
    keywords=snakemake.input.keywords,
    source_settings=SourceSettings(**snakemake.params.source_settings),
    index_file=snakemake.input.index_file or None,
    settings=MetadataSettings.from_config(snakemake.params),
    threads=snakemake.threads,
    memory_limit=snakemake.params.memory_limit,
)
