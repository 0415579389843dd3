"""Faults a real llama-server will not produce on demand, from the local fault server."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import openai
import pytest

from tests.fakes.anthropic_server import AnthropicFakeServer
from tests.fakes.fault_server import FaultServer
from tests.fakes.one_shot_server import OneShotServer
from tests.testbed.waiting import wait_until

PROMPT = [{"role": "user", "content": "hi"}]


def chat(daemon, key: str, **body) -> httpx.Response:
    return httpx.post(
        daemon.base_url + "/v1/chat/completions",
        json={"model": "tiny", "messages": PROMPT, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def stream_frames(daemon, key: str) -> list[str]:
    with httpx.stream(
        "POST",
        daemon.base_url + "/v1/chat/completions",
        json={"model": "tiny", "messages": PROMPT, "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        return [line for line in response.iter_lines() if line.startswith("data: ")]


def provider_state(daemon, name: str) -> str:
    return daemon.admin_call("GET", f"/providers/{name}").json()["state"]


def test_a_loading_provider_gets_no_traffic_until_it_is_ready(corral_daemon):
    with FaultServer() as upstream:
        upstream.set_mode("loading")
        corral_daemon.add_provider("warming", upstream.base_url, models={"tiny": "tiny"})
        key = corral_daemon.create_key("app")

        assert provider_state(corral_daemon, "warming") == "loading"
        refused = chat(corral_daemon, key)
        assert refused.status_code == 503
        assert "model 'tiny'" in refused.json()["error"]["message"]
        assert "warming loading" in refused.json()["error"]["message"]
        assert not [r for r in upstream.requests if r.path == "/v1/chat/completions"]

        upstream.set_mode("ok")
        assert wait_until(lambda: provider_state(corral_daemon, "warming") == "ready")
        assert chat(corral_daemon, key).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_an_upstream_error_before_the_first_byte_fails_over_to_the_next_provider(corral_daemon, status):
    with FaultServer() as failing, FaultServer(reply="backup answered") as backup:
        failing.set_mode("status", status=status)
        corral_daemon.add_provider("failing", failing.base_url, priority=10)
        corral_daemon.add_provider("backup", backup.base_url, priority=0)
        key = corral_daemon.create_key("app")

        response = chat(corral_daemon, key)

        assert response.status_code == 200
        assert response.headers["x-corral-provider"] == "backup"
        assert response.json()["choices"][0]["message"]["content"] == "backup answered"
        assert len([r for r in failing.requests if r.path == "/v1/chat/completions"]) == 1


def test_a_model_not_yet_listed_by_a_loading_provider_is_retry_later_not_unknown(corral_daemon):
    with FaultServer() as upstream:
        upstream.set_mode("loading")
        corral_daemon.add_provider("warming", upstream.base_url)  # models to be discovered once it is ready

        refused = chat(corral_daemon, corral_daemon.create_key("app"))

        assert refused.status_code == 503
        assert "warming have not listed their models yet" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "2"


def test_repeated_failures_open_the_circuit_and_traffic_skips_the_provider(corral_daemon):
    with FaultServer() as failing, FaultServer() as backup:
        failing.set_mode("status", status=500)
        corral_daemon.add_provider("failing", failing.base_url, priority=10)
        corral_daemon.add_provider("backup", backup.base_url, priority=0)
        key = corral_daemon.create_key("app")

        statuses = [chat(corral_daemon, key).status_code for _ in range(8)]

        assert statuses == [200] * 8
        assert len([r for r in failing.requests if r.path == "/v1/chat/completions"]) == 3
        assert provider_state(corral_daemon, "failing") == "circuit_open"


def test_when_every_provider_fails_the_client_gets_the_upstream_failure(corral_daemon):
    with FaultServer() as only:
        only.set_mode("status", status=500, message="CUDA out of memory")
        corral_daemon.add_provider("only", only.base_url)
        client = openai.OpenAI(
            base_url=corral_daemon.base_url + "/v1", api_key=corral_daemon.create_key("app"), max_retries=0
        )

        with pytest.raises(openai.APIStatusError, match="CUDA out of memory") as raised:
            client.chat.completions.create(model="tiny", messages=PROMPT)
        assert raised.value.status_code == 502
        client.close()


def test_a_stream_cut_mid_answer_ends_with_an_error_event(corral_daemon):
    with FaultServer() as upstream:
        upstream.set_mode("cut_stream", after_chunks=3)
        corral_daemon.add_provider("cutter", upstream.base_url)

        frames = stream_frames(corral_daemon, corral_daemon.create_key("app"))

        assert "data: [DONE]" not in frames
        assert '"error"' in frames[-1]
        assert len(frames) == 4, "three upstream chunks, then the error event"


def test_garbage_sse_does_not_end_as_a_clean_stream(corral_daemon):
    with FaultServer() as upstream:
        upstream.set_mode("garbage_sse")
        corral_daemon.add_provider("garbage", upstream.base_url)

        frames = stream_frames(corral_daemon, corral_daemon.create_key("app"))

        assert "data: [DONE]" not in frames
        assert "ended the stream before it finished" in frames[-1]


def test_a_hung_provider_does_not_stall_requests_to_other_models(corral_daemon):
    with FaultServer(model="stuck") as stuck, FaultServer(model="tiny") as healthy:
        stuck.set_mode("hang")
        corral_daemon.add_provider("stuck", stuck.base_url)
        corral_daemon.add_provider("healthy", healthy.base_url)
        key = corral_daemon.create_key("app")
        hung_client = httpx.Client(timeout=1.0)

        with pytest.raises(httpx.ReadTimeout):
            hung_client.post(
                corral_daemon.base_url + "/v1/chat/completions",
                json={"model": "stuck", "messages": PROMPT},
                headers={"authorization": f"Bearer {key}"},
            )
        started = time.monotonic()
        assert chat(corral_daemon, key).status_code == 200
        assert time.monotonic() - started < 1.0
        hung_client.close()


def test_openai_clients_can_use_an_anthropic_provider_streaming_included(corral_daemon):
    with AnthropicFakeServer(api_key="sk-ant-test-1234") as upstream:
        corral_daemon.add_provider(
            "claude",
            upstream.base_url,
            type_="anthropic",
            api_key="sk-ant-test-1234",
            models={"claude": "claude-fake-1"},
        )
        client = openai.OpenAI(
            base_url=corral_daemon.base_url + "/v1", api_key=corral_daemon.create_key("app"), max_retries=0
        )

        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
        reply = client.chat.completions.create(model="claude", messages=messages)
        chunks = list(
            client.chat.completions.create(
                model="claude",
                messages=[{"role": "user", "content": "hello there"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        client.close()

    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.model == "claude"
    assert reply.usage.completion_tokens == 3
    assert upstream.requests[0]["system"] == "be brief"
    assert upstream.requests[0]["model"] == "claude-fake-1"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage.completion_tokens == 3


def test_the_upstream_key_never_appears_in_admin_answers_or_logs(corral_daemon):
    with AnthropicFakeServer(api_key="sk-ant-secret-abcd") as upstream:
        corral_daemon.add_provider(
            "claude",
            upstream.base_url,
            type_="anthropic",
            api_key="sk-ant-secret-abcd",
            models={"claude": "claude-fake-1"},
        )
        paths = ("/providers", "/status", "/providers/claude")
        answers = [corral_daemon.admin_call("GET", path).text for path in paths]

    for answer in answers:
        assert "sk-ant-secret-abcd" not in answer
    assert "…abcd" in answers[0]
    assert "sk-ant-secret" not in corral_daemon.log_tail(1000)
    assert "sk-ant-secret" not in (corral_daemon.data_dir / "config.json").read_text().replace(
        '"api_key": "sk-ant-secret-abcd"', ""
    )


def test_max_concurrency_is_respected_and_extra_requests_wait_for_a_slot(corral_daemon):
    with FaultServer(total_slots=8) as upstream:
        upstream.set_mode("slow", delay_s=0.3)
        corral_daemon.add_provider("capped", upstream.base_url, max_concurrency=2)
        key = corral_daemon.create_key("app")

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: chat(corral_daemon, key).status_code, range(6)))

        assert statuses == [200] * 6
        assert upstream.peak_in_flight == 2


def test_a_client_that_stops_reading_does_not_stall_other_requests(corral_daemon):
    with FaultServer(model="tiny") as upstream:
        corral_daemon.add_provider("local", upstream.base_url)
        key = corral_daemon.create_key("app")
        stalled = httpx.Client(timeout=30)
        with stalled.stream(
            "POST",
            corral_daemon.base_url + "/v1/chat/completions",
            json={"model": "tiny", "messages": PROMPT, "stream": True},
            headers={"authorization": f"Bearer {key}"},
        ):
            # This client holds its stream open without reading a byte.
            started = time.monotonic()
            statuses = [chat(corral_daemon, key).status_code for _ in range(5)]
            elapsed = time.monotonic() - started
        stalled.close()

    assert statuses == [200] * 5
    assert elapsed < 2.0


def test_a_reused_connection_the_upstream_already_closed_is_retried_not_counted_as_a_failure(corral_daemon):
    with OneShotServer() as upstream:
        corral_daemon.add_provider("one-shot", upstream.base_url)
        key = corral_daemon.create_key("app")

        statuses = [chat(corral_daemon, key).status_code for _ in range(6)]
        provider = corral_daemon.admin_call("GET", "/providers/one-shot").json()

    assert statuses == [200] * 6
    assert upstream.hung_up >= 1, "the gateway did reuse a connection the server had given up on"
    assert provider["errors"] == 0
    assert provider["circuit"] == "closed"
