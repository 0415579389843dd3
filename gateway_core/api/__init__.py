"""The ASGI apps: public (OpenAI-compatible, TCP) and admin (Unix socket)."""
