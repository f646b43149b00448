"""RS5M build system: the library behind the Snakemake rules, laid out as the DAG.

`pub11/`, `rs3/` and `assemble/` hold one module per rule (rules/<stage>.smk -> workflow/scripts/<rule>.py
-> rs5m/<stage>/<rule>.py); `demo/` the embedded demo; `browse/` the rating app. The core beside them:
`adapter`, `columns`, `ledger`, `tar`, `duck`, `models`, `offline`, `geo`, `metacaption`, `loader`, `cli`.
"""
