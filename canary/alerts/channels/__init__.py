"""Alert delivery channels: email, Slack, generic webhook and the log.

Each channel makes one delivery attempt and raises DeliveryError with a one-line,
secret-free reason; the outbox in canary.alerts decides when to try again."""

from canary.alerts.channels.base import Channel
from canary.alerts.channels.build import build_channels, required_env
from canary.alerts.channels.log import LogChannel
from canary.alerts.channels.mail import EmailSender
from canary.alerts.channels.slack import SlackSender
from canary.alerts.channels.text import render_text
from canary.alerts.channels.webhook import WebhookSender

__all__ = [
    "Channel",
    "EmailSender",
    "LogChannel",
    "SlackSender",
    "WebhookSender",
    "build_channels",
    "render_text",
    "required_env",
]
