"""Turn `alerts:` in canary.yaml plus the environment into ready channels.

Everything that can be checked without sending is checked here, so `canary check`
fails (exit 78) on a missing variable or an unreadable CA file before the first alert
is due. Errors name variables, never their values."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from canary.alerts.channels.base import Channel
from canary.alerts.channels.log import LogChannel
from canary.alerts.channels.mail import EmailSender
from canary.alerts.channels.posting import is_http_url
from canary.alerts.channels.slack import SlackSender
from canary.alerts.channels.webhook import WebhookSender
from canary.config.models import AlertsConfig, EmailChannel
from canary.errors import SetupError


def required_env(alerts: AlertsConfig) -> list[tuple[str, str]]:
    """(config key, variable) for every variable the configured channels read."""
    needed: list[tuple[str, str]] = []
    if alerts.email:
        for key in ("user_env", "password_env"):
            if var := getattr(alerts.email, key):
                needed.append((f"alerts.email.{key}", var))
    if alerts.slack:
        needed.append(("alerts.slack.webhook_url_env", alerts.slack.webhook_url_env))
    if alerts.webhook:
        for key in ("url_env", "secret_env"):
            if var := getattr(alerts.webhook, key):
                needed.append((f"alerts.webhook.{key}", var))
    return needed


def _tls_context(config: EmailChannel, base_dir: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if config.ca_file:
        path = Path(config.ca_file).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
            raise SetupError(f"alerts.email.ca_file: cannot load CA bundle {path}: {reason}") from None
    return context


def _email(config: EmailChannel, env: Mapping[str, str], base_dir: Path | None) -> EmailSender:
    if (config.user_env is None) != (config.password_env is None):
        raise SetupError("alerts.email: give both user_env and password_env, or neither")
    if config.user_env and config.security == "none":
        raise SetupError(
            "alerts.email: security: none would send the SMTP password in clear text "
            "(use starttls or ssl, or drop user_env/password_env for an open local relay)"
        )
    for address in [config.sender, *config.to]:
        if "\r" in address or "\n" in address:
            raise SetupError("alerts.email: an address contains a line break")
    user = env[config.user_env] if config.user_env else None
    password = env[config.password_env] if config.password_env else None
    return EmailSender(config, user=user, password=password, context=_tls_context(config, base_dir))


def build_channels(
    alerts: AlertsConfig, env: Mapping[str, str], *, base_dir: Path | None = None
) -> list[Channel]:
    """One channel per configured `alerts:` entry, plus the log channel when `alerts.log`.

    `base_dir` (canary.yaml's folder) anchors a relative `ca_file`."""
    missing = [f"{var} ({key})" for key, var in required_env(alerts) if not env.get(var)]
    if len(missing) == 1:
        raise SetupError(f"alerts: environment variable {missing[0]} is not set")
    if missing:
        raise SetupError("alerts: environment variables not set: " + ", ".join(missing))
    channels: list[Channel] = []
    if alerts.log:
        channels.append(LogChannel())
    if alerts.email:
        channels.append(_email(alerts.email, env, base_dir))
    if alerts.slack:
        var = alerts.slack.webhook_url_env
        if not is_http_url(env[var]):
            raise SetupError(f"alerts.slack.webhook_url_env: {var} does not hold an http(s) URL")
        channels.append(SlackSender(env[var], timeout_s=alerts.slack.timeout_s))
    if alerts.webhook:
        hook = alerts.webhook
        url = env[hook.url_env] if hook.url_env else hook.url or ""
        if not is_http_url(url):
            where = (
                f"alerts.webhook.url_env: {hook.url_env} does not hold"
                if hook.url_env
                else "alerts.webhook.url: not"
            )
            raise SetupError(f"{where} an http(s) URL")
        secret = env[hook.secret_env].encode("utf-8") if hook.secret_env else None
        channels.append(
            WebhookSender(
                url, url_env=hook.url_env, secret=secret, headers=hook.headers, timeout_s=hook.timeout_s
            )
        )
    return channels
