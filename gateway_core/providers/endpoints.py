"""Where each provider type serves what. llama-server and Ollama URLs are the server root; an
`openai` URL is the API base (https://api.groq.com/openai/v1), since hosted APIs put it in different places."""

from __future__ import annotations

from .config import ProviderConfig

ROUTE_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


def api_base(config: ProviderConfig) -> str:
    if config.type == "openai":
        return config.base_url
    return config.base_url + "/v1"


def route_url(config: ProviderConfig, route: str) -> str:
    if config.type == "anthropic":
        return config.base_url + "/v1/messages"
    return api_base(config) + ROUTE_PATHS[route]


def auth_headers(config: ProviderConfig) -> dict[str, str]:
    key = config.upstream_key()
    if not key:
        return {}
    if config.type == "anthropic":
        return {"x-api-key": key}
    return {"authorization": f"Bearer {key}"}
