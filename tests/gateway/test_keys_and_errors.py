"""Keys are checked on every request, and bad input gets an OpenAI-shaped error the SDK maps correctly."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]


@pytest.fixture
def daemon(corral_daemon, llama_servers):
    (server,) = llama_servers(1, parallel=4)
    corral_daemon.add_provider("local", server.base_url)
    return corral_daemon


def sdk(daemon, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0)


def post_chat(daemon, key: str | None, content: bytes | None = None, json: object = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(daemon.base_url + "/v1/chat/completions", content=content, json=json, headers=headers)


def assert_openai_error(response: httpx.Response, status: int, words: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert words in error["message"]
    return error


def test_revoked_key_is_refused_on_its_very_next_request(daemon):
    key = daemon.create_key("soon-revoked")
    client = sdk(daemon, key)
    client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)

    assert daemon.admin_call("POST", "/keys/soon-revoked/revoke").status_code == 200

    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)
    client.close()


def test_expired_key_is_refused(daemon):
    key = daemon.create_key("short-lived", expires_in_days=0.00001)  # about a second

    time.sleep(1.2)

    assert_openai_error(post_chat(daemon, key, json={"model": "tiny", "messages": PROMPT}), 401, "expired")


@pytest.mark.parametrize(
    ("authorization", "words"),
    [
        (None, "missing API key"),
        ("Basic abc", "malformed API key"),
        ("Bearer sk-other-123", "malformed API key"),
        ("Bearer sk-corral-000000000000-wrongsecret", "unknown API key"),
    ],
)
def test_missing_malformed_and_unknown_keys_get_401(daemon, authorization, words):
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.post(
        daemon.base_url + "/v1/chat/completions", json={"model": "tiny", "messages": PROMPT}, headers=headers
    )

    assert_openai_error(response, 401, words)


def test_a_key_scoped_to_other_models_gets_403_for_this_one(daemon):
    client = sdk(daemon, daemon.create_key("scoped", models=["other-model"]))

    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'tiny'"):
        client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)
    client.close()


def test_requests_over_the_rpm_limit_get_429_with_retry_after(daemon):
    key = daemon.create_key("limited", rpm=2)
    body = {"model": "tiny", "messages": PROMPT, "max_tokens": 1}

    first, second, third = (post_chat(daemon, key, json=body) for _ in range(3))

    assert (first.status_code, second.status_code) == (200, 200)
    assert_openai_error(third, 429, "2 requests per minute")
    assert 1 <= int(third.headers["retry-after"]) <= 60


def test_the_sdk_raises_rate_limit_error_over_the_token_limit(daemon):
    client = sdk(daemon, daemon.create_key("few-tokens", tpm=10))
    client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=8)  # uses more than 10 tokens

    with pytest.raises(openai.RateLimitError, match="tokens per minute"):
        client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)
    client.close()


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", 400, "not valid UTF-8 JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "'model' is required"),
        (b'{"model": "tiny"}', 400, "'messages' is required"),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}', 404, "not served here"),
    ],
)
def test_bad_requests_get_the_status_the_sdk_expects(daemon, content, status, words):
    key = daemon.create_key("app")

    assert_openai_error(post_chat(daemon, key, content=content), status, words)


def test_a_body_over_the_cap_gets_413(daemon):
    key = daemon.create_key("app")
    huge = b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"x" * (11 * 1024 * 1024) + b'"}]}'

    assert_openai_error(post_chat(daemon, key, content=huge), 413, "limit")


def test_upstream_4xx_passes_through_unchanged(daemon, llama_servers):
    key = daemon.create_key("app")
    body = {"model": "tiny", "messages": [{"role": "user", "content": 5}]}  # llama-server refuses with 400
    (direct,) = llama_servers(1)

    via_gateway = post_chat(daemon, key, json=body)
    upstream = httpx.post(direct.base_url + "/v1/chat/completions", json=body)

    assert 400 <= upstream.status_code < 500
    assert via_gateway.status_code == upstream.status_code
    assert via_gateway.json() == upstream.json()
