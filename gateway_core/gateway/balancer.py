"""Which provider serves a request, and in what order the others are tried if it fails.

The highest-priority tier with a routable member wins. Within a tier the provider with the fewest
requests in flight relative to its capacity goes first; ties go by smooth weighted round-robin, so
equal providers rotate and a weight-2 provider gets twice the share of a weight-1 one.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway_core.providers.runtime import ProviderRuntime


def _tiers(candidates: Iterable[ProviderRuntime]) -> list[list[ProviderRuntime]]:
    by_priority: dict[int, list[ProviderRuntime]] = {}
    for provider in candidates:
        by_priority.setdefault(provider.config.priority, []).append(provider)
    return [by_priority[priority] for priority in sorted(by_priority, reverse=True)]


def _rotate(tied: list[ProviderRuntime]) -> ProviderRuntime:
    """Smooth weighted round-robin (as nginx does) among equally loaded providers."""
    total = 0
    best = tied[0]
    for provider in tied:
        provider.rotation += provider.config.weight
        total += provider.config.weight
        if provider.rotation > best.rotation:
            best = provider
    best.rotation -= total
    return best


def plan(candidates: Iterable[ProviderRuntime]) -> list[ProviderRuntime]:
    """Routable providers in the order to try them: the chosen one first, then fallbacks (never one that is
    disabled, drained for maintenance, not ready, open-circuited or at its max concurrency)."""
    order: list[ProviderRuntime] = []
    for tier in _tiers(p for p in candidates if p.routable()):
        remaining = sorted(tier, key=lambda p: p.load)
        lightest = remaining[0].load
        tied = [p for p in remaining if p.load == lightest]
        first = _rotate(tied) if len(tied) > 1 else tied[0]
        order.append(first)
        order.extend(p for p in remaining if p is not first)
    return order
