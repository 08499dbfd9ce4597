"""Email channel: one SMTP conversation per delivery, TLS verified, password never echoed.

`security: none` sends in clear text and is only sensible for a relay on the same host
or network (e.g. a local postfix on 127.0.0.1:25); credentials are refused with it
when the channel is built, so a password never crosses the wire unencrypted.

Every wait is bounded: each connect and command by `timeout_s`, the whole conversation by
CONVERSATION_TIMEOUTS times that (a watchdog closes the socket of a server that drips). An SMTP
5xx (535 authentication failed, 550 mailbox unavailable, every recipient refused) is permanent;
a 4xx, a refused connection or a timeout is temporary and retried by the outbox."""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import re
import smtplib
import socket
import ssl
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from canary.alerts.channels.posting import is_http_url
from canary.alerts.channels.text import label, one_line, render_text
from canary.alerts.message import AlertEvent, AlertMessage, DeliveryError
from canary.config.models import EmailChannel

log = logging.getLogger("canary.alerts")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COLOURS = {"firing": "#c62828", "repeat": "#ef6c00", "resolved": "#2e7d32"}
CONVERSATION_TIMEOUTS = 4  # the whole SMTP conversation ends within this many timeout_s


def message_id(alert_id: str, sender: str) -> str:
    """A Message-ID that is the same for every re-delivery of one message, so a mail
    client (or a person) can recognise a repeat."""
    local = alert_id if _SAFE_ID.match(alert_id) else hashlib.sha256(alert_id.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not re.match(r"^[A-Za-z0-9.-]{1,253}$", domain):
        domain = "canary.invalid"
    return f"<canary.{local}@{domain}>"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _e(text: object) -> str:
    return html.escape(one_line(text), quote=True)


def _html_link(url: str, text: str) -> str:
    if not is_http_url(url):
        return _e(f"{text}: {url}")
    return f'<a href="{_e(url)}">{_e(text)}</a>'


def _html_event(event: AlertEvent) -> str:
    colour = COLOURS.get(event.event, "#555555")
    rows = [("Model", event.model_id), ("Scope", event.scope), ("Signal", event.signal)]
    if event.today or event.baseline:
        rows += [("Today", event.today or "-"), ("Baseline", event.baseline or "-")]
    if event.day:
        rows.append(("Day", event.day.isoformat()))
    table = "".join(f"<tr><th align='left'>{name}</th><td>{_e(value)}</td></tr>" for name, value in rows)
    parts = [
        f"<div style='margin:1em 0;padding:.5em 1em;border-left:4px solid {colour}'>",
        f"<p><strong>{_e(label(event))}</strong> {_e(event.summary)}</p>",
        f"<table cellpadding='2'>{table}</table>",
    ]
    if event.detail:
        parts.append(f"<p>{_e(event.detail)}</p>")
    if event.report_url:
        parts.append(f"<p>{_html_link(event.report_url, 'details')}</p>")
    parts.append("</div>")
    return "".join(parts)


def render_html(message: AlertMessage) -> str:
    """The HTML alternative. Model output is untrusted: every string goes through html.escape."""
    body = [f"<h2>{_e(message.title)}</h2>"] + [_html_event(e) for e in message.events]
    if message.report_url:
        body.append(f"<p>{_html_link(message.report_url, 'Open the canary report')}</p>")
    return "<!doctype html><html><body style='font-family:sans-serif'>" + "".join(body) + "</body></html>\n"


def build_email(message: AlertMessage, sender: str, to: list[str]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = one_line(message.title, 200)
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = format_datetime(_aware(message.created_at))
    mail["Message-ID"] = message_id(message.id, sender)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to the alert
    mail.set_content(render_text(message) + "\n")
    mail.add_alternative(render_html(message), subtype="html")
    return mail


class EmailSender:
    """Sends each message in its own SMTP session (alerts are rare; a kept-open
    connection would only time out between them)."""

    name = "email"

    def __init__(
        self,
        config: EmailChannel,
        *,
        user: str | None = None,
        password: str | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        self._user = user
        self._password = password
        self._context = context or ssl.create_default_context()
        self._where = f"email via {config.host}:{config.port}"

    def deliver(self, message: AlertMessage) -> None:
        mail = build_email(message, self._config.sender, list(self._config.to))
        expired = threading.Event()
        try:
            refused = self._send(mail, expired)
        except (
            smtplib.SMTPException,
            OSError,
        ) as exc:  # SMTPException is an OSError; both listed for clarity
            if expired.is_set():
                limit = CONVERSATION_TIMEOUTS * self._config.timeout_s
                raise DeliveryError(
                    f"{self._where}: the conversation did not finish within {limit:g}s", reason="timeout"
                ) from None
            permanent, reason = self._classify(exc)
            raise DeliveryError(
                f"{self._where}: {self._scrub(self._reason(exc))}",
                permanent=permanent,
                reason=self._scrub(reason),
            ) from None
        if refused:
            log.warning("%s: some recipients were refused: %s", self._where, ", ".join(sorted(refused)))

    def _classify(self, exc: BaseException) -> tuple[bool, str]:
        """(permanent, short reason): an SMTP 5xx is permanent, everything else is worth a retry."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
            codes = sorted(code for code, _ in exc.recipients.values())
            code, text = next(iter(sorted(exc.recipients.values())))
            return codes[0] >= 500, one_line(f"{code} {_text(text)}", 80)
        if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 400:
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                return exc.smtp_code >= 500, f"{exc.smtp_code} authentication failed"
            return exc.smtp_code >= 500, one_line(f"{exc.smtp_code} {_text(exc.smtp_error)}", 80)
        return False, one_line(self._reason(exc), 80)

    def _connect(self) -> smtplib.SMTP:
        """An unconnected client, so the watchdog can reach its socket from the first byte on."""
        c = self._config
        conn = (
            smtplib.SMTP_SSL(timeout=c.timeout_s, context=self._context)
            if c.security == "ssl"
            else smtplib.SMTP(timeout=c.timeout_s)
        )
        conn._host = c.host  # what SMTP(host) sets: the TLS server name for STARTTLS and SMTPS
        return conn

    def _send(self, mail: EmailMessage, expired: threading.Event) -> dict[str, tuple[int, bytes]]:
        conn = self._connect()

        def abort() -> None:  # a server that answers a byte at a time must not hold the check
            expired.set()
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(CONVERSATION_TIMEOUTS * self._config.timeout_s, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect(self._config.host, self._config.port)
            conn.ehlo()
            if self._config.security == "starttls":
                conn.starttls(
                    context=self._context
                )  # raises SMTPNotSupportedError rather than go on in clear
                conn.ehlo()
            if self._user is not None and self._password is not None:
                conn.login(self._user, self._password)
            refused = conn.send_message(mail, from_addr=self._config.sender, to_addrs=list(self._config.to))
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()  # the message was accepted; a rude goodbye does not undo that
            return refused
        finally:
            watchdog.cancel()
            conn.close()

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return f"authentication failed ({exc.smtp_code} {_text(exc.smtp_error)})"
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return "every recipient was refused: " + ", ".join(
                f"{rcpt} ({code})" for rcpt, (code, _) in sorted(exc.recipients.items())
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError) and self._config.security == "starttls":
            return "the server does not offer STARTTLS; not sending in clear text"
        if isinstance(exc, smtplib.SMTPResponseException):
            return f"server answered {exc.smtp_code} {_text(exc.smtp_error)}"
        if isinstance(exc, TimeoutError) or isinstance(
            exc.__context__, TimeoutError
        ):  # smtplib wraps read timeouts
            return f"no answer within {self._config.timeout_s:g}s"
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return f"server closed the connection ({exc})" if str(exc) else "server closed the connection"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({exc.verify_message})"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed ({exc.reason or exc})"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        return str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc) or type(exc).__name__

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def __repr__(self) -> str:
        return f"EmailSender({self._config.host}:{self._config.port}, {self._config.security})"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
