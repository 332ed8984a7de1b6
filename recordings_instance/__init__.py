"""How both apps read archive evidence from the Dagster instance.

The pipeline (`recordings_dagster`) and the API (`recordings_api`) never import each other, and
the domain (`recordings`) imports no framework, so the code that reads the archive asset's
materializations from a Dagster instance lives here, once: the asset keys (one per shard of
tenants), the "latest materialization per partition" lookup, and the cache of evidence by
storage id. This package
depends only on `dagster` and `recordings`.
"""
