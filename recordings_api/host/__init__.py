"""Host administration: tenants' daily recordings settings."""
