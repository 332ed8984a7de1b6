"""Hourly archives of a UTC day: which exist, and the signed links to download them."""
