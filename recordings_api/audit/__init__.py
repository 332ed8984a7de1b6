"""Reading the download audit log: tenants their own, the host everyone's."""
