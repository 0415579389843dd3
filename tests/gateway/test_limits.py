"""Per-key limits: requests per minute, tokens per minute and requests in flight, over a clock the tests move."""

from __future__ import annotations

import pytest

from gateway_core.gateway.limits import BUCKET_S, KeyLimits, LimitExceeded, RateLimiter


class FakeClock:
    """A monotonic clock that moves only when a test sets `now`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(clock=clock)


def refusal(limiter: RateLimiter, limits: KeyLimits, key_id: str = "k1", key_name: str = "app1") -> LimitExceeded:
    with pytest.raises(LimitExceeded) as caught:
        limiter.acquire(key_id, key_name, limits)
    return caught.value


def test_requests_over_rpm_are_refused_with_retry_after_until_the_window_slides(limiter, clock):
    limits = KeyLimits(rpm=3)
    for start in (0.0, 10.0, 20.0):
        clock.now = start
        limiter.acquire("k1", "app1", limits).release()

    clock.now = 48.0
    refused = refusal(limiter, limits)
    assert (refused.limit, refused.retry_after_s) == ("rpm", 12)
    assert str(refused) == "key 'app1' is over its 3 requests per minute; retry after 12 s"

    clock.now = 60.0  # the request at 0 s has left the window
    limiter.acquire("k1", "app1", limits).release()
    clock.now = 61.0
    assert refusal(limiter, limits).retry_after_s == 9  # the request at 10 s leaves at 70 s


def test_refused_requests_do_not_count_against_rpm(limiter, clock):
    limits = KeyLimits(rpm=1)
    limiter.acquire("k1", "app1", limits).release()
    for second in range(1, 60):
        clock.now = float(second)
        refusal(limiter, limits)

    clock.now = 60.0
    limiter.acquire("k1", "app1", limits).release()


def test_tokens_recorded_after_the_response_count_against_tpm(limiter, clock):
    limits = KeyLimits(tpm=100)
    with limiter.acquire("k1", "app1", limits) as lease:
        clock.now = 5.0
        lease.add_tokens(60)
    clock.now = 10.0
    with limiter.acquire("k1", "app1", limits) as lease:
        clock.now = 20.0
        lease.add_tokens(50)

    clock.now = 30.0
    refused = refusal(limiter, limits)
    assert (refused.limit, refused.retry_after_s) == ("tpm", 35)  # the 60 tokens at 5 s leave at 65 s
    assert str(refused) == "key 'app1' is over its 100 tokens per minute; retry after 35 s"

    clock.now = 65.0
    limiter.acquire("k1", "app1", limits).release()


def test_tpm_refuses_once_the_tokens_in_the_window_reach_the_limit(limiter):
    limits = KeyLimits(tpm=100)
    with limiter.acquire("k1", "app1", limits) as lease:
        lease.add_tokens(99)
    with limiter.acquire("k1", "app1", limits) as lease:  # 99 < 100: still admitted
        lease.add_tokens(1)

    assert refusal(limiter, limits).limit == "tpm"


def test_tokens_count_from_when_they_were_recorded_not_when_the_request_started(limiter, clock):
    limits = KeyLimits(tpm=10)
    with limiter.acquire("k1", "app1", limits) as lease:
        clock.now = 50.0  # a long generation
        lease.add_tokens(10)

    clock.now = 100.0
    assert refusal(limiter, limits).retry_after_s == 10
    clock.now = 110.0
    limiter.acquire("k1", "app1", limits).release()


def test_one_response_larger_than_tpm_blocks_the_key_for_a_minute(limiter, clock):
    limits = KeyLimits(tpm=100)
    with limiter.acquire("k1", "app1", limits) as lease:
        lease.add_tokens(1_000)

    clock.now = 1.0
    assert refusal(limiter, limits).retry_after_s == 59


def test_concurrency_slot_is_freed_on_release_even_after_an_error(limiter):
    limits = KeyLimits(max_concurrency=1)
    refusals: list[LimitExceeded] = []

    def forward_and_fail() -> None:
        with limiter.acquire("k1", "app1", limits):
            refusals.append(refusal(limiter, limits))
            raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError, match="upstream failed"):
        forward_and_fail()

    (refused,) = refusals
    assert (refused.limit, refused.retry_after_s) == ("concurrency", 1)
    assert str(refused) == "key 'app1' is at its limit of 1 requests in flight; retry after 1 s"
    limiter.acquire("k1", "app1", limits).release()


def test_concurrency_is_checked_before_rpm_and_rpm_before_tpm(limiter):
    limits = KeyLimits(rpm=1, tpm=1, max_concurrency=1)
    lease = limiter.acquire("k1", "app1", limits)
    lease.add_tokens(5)

    assert refusal(limiter, limits).limit == "concurrency"
    lease.release()
    assert refusal(limiter, limits).limit == "rpm"
    assert refusal(limiter, KeyLimits(tpm=1)).limit == "tpm"


def test_unlimited_key_is_never_refused(limiter, clock):
    limits = KeyLimits()
    for n in range(10_000):
        clock.now = n / 1_000
        limiter.acquire("k1", "app1", limits).add_tokens(100_000)  # never released

    assert limiter.usage("k1") == {"in_flight": 10_000, "requests_last_minute": 10_000, "tokens_last_minute": 10**9}


@pytest.mark.parametrize(("now", "expected"), [(58.5, 2), (59.0, 1), (59.5, 1), (59.999999, 1)])
def test_retry_after_is_at_least_one_second(limiter, clock, now, expected):
    limits = KeyLimits(rpm=1)
    limiter.acquire("k1", "app1", limits).release()
    clock.now = now

    assert refusal(limiter, limits).retry_after_s == expected


def test_retry_after_is_not_inflated_by_float_noise(limiter, clock):
    limits = KeyLimits(rpm=1)
    clock.now = 0.2
    limiter.acquire("k1", "app1", limits).release()
    clock.now = 30.2  # 60.2 - 30.2 is 30.000000000000004 in floats

    assert refusal(limiter, limits).retry_after_s == 30


def test_release_is_idempotent(limiter):
    limits = KeyLimits(max_concurrency=2)
    lease = limiter.acquire("k1", "app1", limits)
    lease.release()
    lease.release()
    with lease:
        pass

    assert lease.released
    assert limiter.usage("k1")["in_flight"] == 0
    limiter.acquire("k1", "app1", limits)
    limiter.acquire("k1", "app1", limits)
    assert refusal(limiter, limits).limit == "concurrency"


def test_keys_are_limited_independently(limiter):
    limits = KeyLimits(rpm=1)
    limiter.acquire("k1", "app1", limits).release()

    limiter.acquire("k2", "app2", limits).release()
    assert "'app1'" in str(refusal(limiter, limits, "k1", "app1"))


def test_usage_reports_in_flight_and_the_last_minute(limiter, clock):
    limits = KeyLimits()
    limiter.acquire("k1", "app1", limits).add_tokens(7)
    clock.now = 30.0
    limiter.acquire("k1", "app1", limits).release()

    assert limiter.usage("k1") == {"in_flight": 1, "requests_last_minute": 2, "tokens_last_minute": 7}
    clock.now = 60.0
    assert limiter.usage("k1") == {"in_flight": 1, "requests_last_minute": 1, "tokens_last_minute": 0}


def test_usage_of_an_unknown_key_is_zero(limiter):
    assert limiter.usage("nobody") == {"in_flight": 0, "requests_last_minute": 0, "tokens_last_minute": 0}


def test_forget_drops_a_removed_keys_state(limiter):
    limits = KeyLimits(rpm=1, max_concurrency=1)
    lease = limiter.acquire("k1", "app1", limits)

    limiter.forget("k1")
    limiter.forget("k1")
    assert limiter.usage("k1") == {"in_flight": 0, "requests_last_minute": 0, "tokens_last_minute": 0}
    fresh = limiter.acquire("k1", "app1", limits)
    lease.release()  # a lease from before forget() leaves the new state alone
    assert limiter.usage("k1")["in_flight"] == 1
    fresh.release()


def test_negative_token_counts_are_refused(limiter):
    lease = limiter.acquire("k1", "app1", KeyLimits())

    with pytest.raises(ValueError, match="must not be negative"):
        lease.add_tokens(-1)


@pytest.mark.parametrize("field", ["rpm", "tpm", "max_concurrency"])
@pytest.mark.parametrize("value", [0, -5, True, 1.5])
def test_key_limits_are_positive_integers_or_none(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive integer or None"):
        KeyLimits(**{field: value})


def test_a_busy_key_keeps_a_bounded_window_and_frees_no_request_early(limiter, clock):
    limits = KeyLimits(rpm=60_000)
    for n in range(50_000):  # 50,000 requests in 5 s: 10,000 a second
        clock.now = n / 10_000
        limiter.acquire("k1", "app1", limits).release()

    assert limiter.usage("k1")["requests_last_minute"] == 50_000
    assert len(limiter._keys["k1"].requests.entries) <= 5 / BUCKET_S + 1
    clock.now = 60.0  # the first requests, at 0 to 0.1 s, are still within a minute of the last of their bucket
    assert limiter.usage("k1")["requests_last_minute"] == 50_000
    clock.now = 60.1
    assert limiter.usage("k1")["requests_last_minute"] == 49_000
