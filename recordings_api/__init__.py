"""The tenants' download API (Litestar): built in the next issue on top of `recordings`."""
