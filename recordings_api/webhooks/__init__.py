"""Tenants' day-ready webhooks: registration, secret rotation, test events, delivery history."""
