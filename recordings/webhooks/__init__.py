"""Day-ready webhooks: signing per Standard Webhooks, safe delivery, the retry schedule,
the outbox of events.

Plain modules (no Dagster, no Litestar) so they can be tested alone; the API registers
endpoints and the Dagster sensors produce and deliver events with them.
"""
