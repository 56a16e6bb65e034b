"""The one retry policy: transient errors only, within a time budget, attempts counted."""

import asyncio
import dataclasses

import pytest

from orchestrator.config import RetryConfig
from orchestrator.errors import (
    ConfigError,
    ModelTimeout,
    ModelUnavailable,
    StoreUnavailable,
    UndecodableMedia,
    attempts_of,
)
from orchestrator.flow import RetryPolicy

QUICK = RetryConfig(budget_s=1.0, backoff_s=0.01, backoff_max_s=0.02)


def flaky(errors: list[BaseException], result="done"):
    calls = []

    async def operation(*args):
        calls.append(args)
        if errors:
            raise errors.pop(0)
        return result
    return operation, calls


async def test_transient_errors_are_retried_until_success():
    retried, health = [], []
    operation, calls = flaky([ModelUnavailable("503"), StoreUnavailable("down")])
    policy = RetryPolicy(QUICK, on_retry=retried.append, health=health.append)
    assert await policy.call(operation, "a") == "done"
    assert len(calls) == 3 and calls[0] == ("a",)
    assert [type(e) for e in retried] == [ModelUnavailable, StoreUnavailable]
    assert health == [False, False, True]


@pytest.mark.parametrize("error", [UndecodableMedia("bad clip"), KeyError("bug"),
                                   RecursionError("deep")])
async def test_anything_not_transient_fails_at_once(error):
    operation, calls = flaky([error])
    with pytest.raises(type(error)):
        await RetryPolicy(QUICK).call(operation)
    assert len(calls) == 1


async def test_the_budget_ends_the_retries_and_the_error_carries_its_attempts():
    operation, calls = flaky([ModelUnavailable("down")] * 1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ModelUnavailable) as caught:
        await RetryPolicy(RetryConfig(budget_s=0.1, backoff_s=0.02, backoff_max_s=0.02)).call(
            operation)
    assert loop.time() - started < 1.0
    assert attempts_of(caught.value) == len(calls) > 1


async def test_a_refusal_after_retries_reports_how_many_attempts_it_took():
    operation, calls = flaky([ModelUnavailable("503"), UndecodableMedia("bad")])
    with pytest.raises(UndecodableMedia) as caught:
        await RetryPolicy(QUICK).call(operation)
    assert attempts_of(caught.value) == 2


async def test_a_timeout_is_tried_twice_at_most_and_never_pauses_intake():
    # A slow input times out on every attempt: retrying it for the whole budget would hold
    # a worker per attempt and, reported as an outage, pause intake for every message.
    retried, health = [], []
    operation, calls = flaky([ModelTimeout("slow")] * 10)
    policy = RetryPolicy(QUICK, on_retry=retried.append, health=health.append)
    with pytest.raises(ModelTimeout) as caught:
        await policy.call(operation)
    assert len(calls) == 2 and attempts_of(caught.value) == 2
    assert len(retried) == 1 and health == []
    operation, calls = flaky([ModelTimeout("slow"), ModelUnavailable("503")])
    assert await policy.call(operation) == "done"
    assert health == [False, True]  # only the outage was reported


async def test_max_attempts_one_tries_once_whatever_the_budget():
    calls = []

    async def down() -> None:
        calls.append(1)
        raise ModelUnavailable("refused")

    with pytest.raises(ModelUnavailable) as raised:
        await RetryPolicy(dataclasses.replace(QUICK, max_attempts=1)).call(down)
    assert calls == [1] and raised.value.attempts == 1


@pytest.mark.parametrize("settings", [{"budget_s": 0}, {"backoff_s": 2.0, "backoff_max_s": 1.0},
                                      {"max_attempts": 0}])
def test_retry_settings_out_of_range_are_refused(settings):
    with pytest.raises(ConfigError):
        RetryConfig(**{"budget_s": 1.0, **settings})
