"""Planning and watching a build: `rs5m plan` (cost before the first request) and `rs5m status`.

`crawl` bounds the download stage's wall time by its hosts, `dag` reads the jobs Snakemake plans,
`plan` turns them and the rates table into a per-stage plan, `status` reads a running build folder.
"""
