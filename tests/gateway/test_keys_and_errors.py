"""Keys are checked on every request, and bad input gets an OpenAI-shaped error the SDK maps correctly.

The gateway runs in-process (its clock moves on demand); the upstream is one real llama-server for the module.
"""

from __future__ import annotations

import httpx
import openai
import pytest
import pytest_asyncio

pytestmark = [pytest.mark.llama_server, pytest.mark.asyncio]

PROMPT = [{"role": "user", "content": "hi"}]
DAY_S = 86_400


@pytest_asyncio.fixture
async def daemon(gateway, shared_llama_server):
    await gateway.add_provider("local", shared_llama_server.base_url)
    return gateway


async def post_chat(daemon, key: str | None, content: bytes | None = None, json: object = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await daemon.public.post("/v1/chat/completions", content=content, json=json, headers=headers)


def assert_openai_error(response: httpx.Response, status: int, words: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert words in error["message"]
    return error


async def test_revoked_key_is_refused_on_its_very_next_request(daemon):
    key = await daemon.create_key("soon-revoked")
    async with daemon.openai(key) as client:
        await client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)

        assert (await daemon.admin.post("/keys/soon-revoked/revoke")).status_code == 200

        with pytest.raises(openai.AuthenticationError, match="revoked"):
            await client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)


async def test_a_key_works_until_it_expires_and_is_refused_after(daemon):
    key = await daemon.create_key("short-lived", expires_in_days=1)
    body = {"model": "tiny", "messages": PROMPT, "max_tokens": 1}
    assert (await post_chat(daemon, key, json=body)).status_code == 200

    daemon.clock.advance(DAY_S + 1)

    assert_openai_error(await post_chat(daemon, key, json=body), 401, "expired")
    (listed,) = (await daemon.admin.get("/keys")).json()
    assert listed["expired"] is True


@pytest.mark.parametrize(
    ("authorization", "words"),
    [
        (None, "missing API key"),
        ("Basic abc", "malformed API key"),
        ("Bearer sk-other-123", "malformed API key"),
        ("Bearer sk-corral-000000000000-wrongsecret", "unknown API key"),
    ],
)
async def test_missing_malformed_and_unknown_keys_get_401(daemon, authorization, words):
    headers = {"authorization": authorization} if authorization else {}
    response = await daemon.public.post(
        "/v1/chat/completions", json={"model": "tiny", "messages": PROMPT}, headers=headers
    )

    assert_openai_error(response, 401, words)


async def test_a_key_scoped_to_other_models_gets_403_for_this_one(daemon):
    async with daemon.openai(await daemon.create_key("scoped", models=["other-model"])) as client:
        with pytest.raises(openai.PermissionDeniedError, match="may not use model 'tiny'"):
            await client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)


async def test_requests_over_the_rpm_limit_get_429_with_retry_after_until_the_minute_has_passed(daemon):
    key = await daemon.create_key("limited", rpm=2)
    body = {"model": "tiny", "messages": PROMPT, "max_tokens": 1}

    first, second, third = [await post_chat(daemon, key, json=body) for _ in range(3)]

    assert (first.status_code, second.status_code) == (200, 200)
    assert_openai_error(third, 429, "2 requests per minute")
    assert 1 <= int(third.headers["retry-after"]) <= 60
    daemon.clock.advance(61)
    assert (await post_chat(daemon, key, json=body)).status_code == 200


async def test_the_sdk_raises_rate_limit_error_over_the_token_limit(daemon):
    async with daemon.openai(await daemon.create_key("few-tokens", tpm=10)) as client:
        await client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=8)  # uses more than 10 tokens

        with pytest.raises(openai.RateLimitError, match="tokens per minute"):
            await client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=1)


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
async def test_bad_requests_get_the_status_the_sdk_expects(daemon, content, status, words):
    key = await daemon.create_key("app")

    assert_openai_error(await post_chat(daemon, key, content=content), status, words)


async def test_a_body_over_the_cap_gets_413(daemon):
    key = await daemon.create_key("app")
    huge = b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"x" * (11 * 1024 * 1024) + b'"}]}'

    assert_openai_error(await post_chat(daemon, key, content=huge), 413, "limit")


async def test_upstream_4xx_keeps_its_status_and_message_in_openais_shape(daemon, shared_llama_server):
    key = await daemon.create_key("app")
    # A llama-server extension field of the wrong type: Corral passes extensions through unchecked, and
    # llama-server refuses it with 400 and a numeric "code", which is not OpenAI's shape.
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n_probs": "several"}

    via_gateway = await post_chat(daemon, key, json=body)
    async with httpx.AsyncClient(base_url=shared_llama_server.base_url) as direct:
        upstream = await direct.post("/v1/chat/completions", json=body)

    assert 400 <= upstream.status_code < 500
    assert isinstance(upstream.json()["error"]["code"], int)
    assert via_gateway.status_code == upstream.status_code
    assert via_gateway.json() == {
        "error": {
            "message": upstream.json()["error"]["message"],
            "type": upstream.json()["error"]["type"],
            "param": None,
            "code": str(upstream.json()["error"]["code"]),
        }
    }
