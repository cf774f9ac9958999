"""The router of a gateway, built from its model settings: one `Deployment` per configured
upstream, with its circuit breaker, and each model's policy and fallback chain."""

from __future__ import annotations

import random

from headrace.config import ModelSettings, RoutingSettings
from headrace.routing.backoff import RetryPolicy
from headrace.routing.breaker import BreakerPolicy, CircuitBreaker
from headrace.routing.router import Deployment, Router
from headrace.routing.upstream import UpstreamError, UpstreamTarget


def retryable(exc: BaseException) -> bool:
    """Worth another deployment: the upstream failed, not the request."""
    return isinstance(exc, UpstreamError) and exc.retryable


def build_router(models: list[ModelSettings], routing: RoutingSettings) -> Router:
    breaker = BreakerPolicy(
        consecutive_failures=routing.breaker_failures,
        error_rate=routing.breaker_error_rate,
        cooldown_s=routing.breaker_cooldown_s,
    )
    deployments = []
    for model in models:
        for d in model.deployments:
            target = UpstreamTarget(
                name=d.name,
                base_url=d.url,
                model=d.model or model.name,
                api_key=d.api_key.get_secret_value() if d.api_key else None,
                timeout_s=d.timeout_s,
            )
            price = model.input_price_per_1m + model.output_price_per_1m
            deployments.append(
                Deployment(
                    name=d.name,
                    model=model.name,
                    kind=d.kind,
                    version=d.version,
                    weight=d.weight,
                    tiers=frozenset(d.tiers),
                    region=d.region,
                    price_per_1m=price,
                    max_outstanding=d.max_outstanding,
                    breaker=CircuitBreaker(breaker),
                    target=target,
                )
            )
    return Router(
        deployments,
        policies={m.name: m.routing for m in models},
        fallbacks={m.name: m.fallbacks for m in models if m.fallbacks},
        retry=RetryPolicy(routing.max_attempts, routing.retry_base_s, routing.retry_max_s),
        budget_s=routing.first_byte_budget_s,
        retryable=retryable,
        rng=random.Random(),
    )
