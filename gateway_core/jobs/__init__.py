"""Queued jobs: the durable store, the service behind the queue API, and the scheduler that runs them."""
