"""Pricing a request's usage."""

from __future__ import annotations

from headrace.metering.usage import Prices, cost_nanousd, usage_event


def test_cost_is_exact_in_nano_dollars() -> None:
    assert cost_nanousd(0.15, 1_000_000) == 150_000_000  # $0.15
    assert cost_nanousd(0.15, 1) == 150
    assert cost_nanousd(0.0, 10**9) == 0


def test_event_prices_input_and_output_separately() -> None:
    event = usage_event(
        request_id="chatcmpl-1",
        created_at=1,
        org_id="org",
        project_id="proj",
        api_key_id="key",
        model="m",
        input_tokens=1000,
        cached_tokens=200,
        output_tokens=500,
        latency_s=0.1234,
        prices=Prices(input_per_1m=2.0, output_per_1m=8.0),
        status="ok",
    )
    assert event.input_cost_nanousd == 2_000_000
    assert event.output_cost_nanousd == 4_000_000
    assert event.cost_usd == 0.006
    assert event.latency_ms == 123
