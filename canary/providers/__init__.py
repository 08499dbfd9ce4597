"""Model providers: one neutral `complete()` over the official SDKs (imported lazily)."""

from __future__ import annotations

from canary.config.models import ResolvedModel
from canary.providers.base import Provider


def build_provider(
    model: ResolvedModel,
    *,
    api_key: str | None,
    base_url: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Provider:
    """The provider for `model`'s wire protocol. `base_url` overrides the configured one (the
    simulator's address); `extra_headers` go on every request (e.g. `x-canary-sim-day`)."""
    if model.config.wire == "anthropic":
        from canary.providers.anthropic_api import AnthropicProvider

        return AnthropicProvider(model, api_key=api_key, base_url=base_url, extra_headers=extra_headers)
    from canary.providers.openai_api import OpenAIProvider

    return OpenAIProvider(model, api_key=api_key, base_url=base_url, extra_headers=extra_headers)


__all__ = ["Provider", "build_provider"]
