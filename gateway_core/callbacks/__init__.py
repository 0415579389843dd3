"""ReplyTo callbacks: a job's final state, signed (Standard Webhooks) and delivered to the app's URL with retries.

settings.py (the flags), signing.py (the headers), destination.py (where a callback may go: the SSRF guard),
store.py (the deliveries on disk), delivery.py (one attempt), service.py (CallbackService: the delivery loop).
"""
