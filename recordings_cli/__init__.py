"""The operators' and developers' tooling: the `recordings` command line, the demo, a local S3
server, a local API server and synthetic conversation audio.

It sits above the three product packages and may import any of them; none of them imports it,
so the domain (`recordings`) stays free of Dagster, Litestar and the apps built on it.
"""
