"""Real receivers for delivery tests: an aiosmtpd SMTP server and a stdlib HTTP server,
both on 127.0.0.1 with a free port, both recording what they received.

The fixtures reach every test module through `pytest_plugins` in tests/conftest.py; use
the classes directly for variants. Both servers record a delivery before they answer
it, so once the client call returns the record is there: no waiting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"

# --------------------------------------------------------------------------- a private CA


@dataclass(frozen=True)
class TestCA:
    """A CA made for one test session and a server certificate (127.0.0.1, localhost) it signed."""

    __test__ = False  # not a test class, whatever the name says

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_test_ca(folder: Path, name: str = "canary test CA") -> TestCA:
    """Generate with `cryptography` (EC P-256: fast, no openssl CLI needed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = TestCA(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # the authenticated user, if any

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Collector:
    def __init__(self, inbox: list[ReceivedMail], lock: threading.Lock) -> None:
        self._inbox, self._lock = inbox, lock
        self.rcpt_answer: str | None = None  # e.g. "550 5.1.1 mailbox unavailable": refuse every RCPT
        self.rcpt_refusals = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list
    ) -> str:
        if self.rcpt_answer is not None:
            with self._lock:
                self.rcpt_refusals += 1
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls, login)
        with self._lock:
            self._inbox.append(mail)
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """A real SMTP server in a thread. Variants: `starttls` (offered, and required when
    `credentials` are set), `implicit_tls` (SMTPS), `credentials` (AUTH required)."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        port: int = 0,
    ) -> None:
        """`port=0` picks a free port; pass a previous receiver's port to bring a "down" server back."""
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.inbox: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self.credentials = credentials

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and credentials is not None
                and ((data.login.decode(), data.password.decode()) == credentials)
            )
            return AuthResult(success=ok, handled=False, auth_data=data if ok else None)  # 535 when not ok

        class _FreePortController(Controller):
            def _trigger_server(self) -> None:  # learn the port the OS picked before poking it
                assert self.server is not None
                self.port = self.server.sockets[0].getsockname()[1]
                super()._trigger_server()

        smtp_kwargs: dict[str, Any] = {"server_hostname": "canary-test.invalid"}
        if implicit_tls:
            smtp_kwargs["ssl_context"] = tls
        elif tls is not None:
            smtp_kwargs.update(tls_context=tls, require_starttls=credentials is not None)
        if credentials is not None:
            smtp_kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=True)
        self._collector = _Collector(self.inbox, self._lock)
        self._controller = _FreePortController(self._collector, hostname=HOST, port=port, **smtp_kwargs)

    def refuse_recipients(self, answer: str | None) -> None:
        """Answer every RCPT TO with `answer` ("550 5.1.1 mailbox unavailable", "451 4.3.0 try later");
        None accepts them again."""
        self._collector.rcpt_answer = answer

    @property
    def rcpt_refusals(self) -> int:
        with self._lock:
            return self._collector.rcpt_refusals

    @property
    def port(self) -> int:
        return self._controller.port

    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.inbox)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpReceiver]:
    """Plain SMTP, no TLS offered: a local relay."""
    with SmtpReceiver() as server:
        yield server


@pytest.fixture
def smtp_starttls(test_ca: TestCA) -> Iterator[SmtpReceiver]:
    """Offers STARTTLS with a certificate from `test_ca`; clients trust it via test_ca.ca_file."""
    with SmtpReceiver(tls=test_ca.server_context()) as server:
        yield server


@pytest.fixture
def smtp_auth(test_ca: TestCA) -> Iterator[SmtpReceiver]:
    """STARTTLS required, then AUTH required, with credentials ("canary", "s3cret-pass-word")."""
    with SmtpReceiver(tls=test_ca.server_context(), credentials=("canary", "s3cret-pass-word")) as server:
        yield server


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, bytes, dict[str, str]]
Hostile = Callable[[BaseHTTPRequestHandler], None]  # writes whatever it likes to the raw connection


def drip(handler: BaseHTTPRequestHandler) -> None:
    """A 200 whose body arrives one byte every 20 ms, for as long as the client keeps reading."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    with contextlib.suppress(OSError):
        for _ in range(100_000):
            handler.wfile.write(b"o")
            handler.wfile.flush()
            time.sleep(0.02)
    handler.close_connection = True


def huge(handler: BaseHTTPRequestHandler, size: int = 100 * 1024 * 1024) -> None:
    """A 200 with a 100 MB body (written until the client hangs up)."""
    handler.wfile.write(
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {size}\r\n\r\n".encode()
    )
    chunk = b"<p>not ok</p>" * 5000
    with contextlib.suppress(OSError):
        for _ in range(size // len(chunk)):
            handler.wfile.write(chunk)
    handler.close_connection = True


def garbage(handler: BaseHTTPRequestHandler) -> None:
    """Bytes that are not HTTP at all, then the connection closes."""
    handler.wfile.write(b"\x00\xff\xfeSSH-2.0-not-http\r\n\r\n\x1b[2J")
    handler.close_connection = True


def _reply(answer: int | tuple[int, bytes] | Reply) -> Reply:
    if isinstance(answer, int):
        return (answer, b"ok", {})
    return (answer[0], answer[1], answer[2] if len(answer) > 2 else {})  # type: ignore[misc]


@dataclass
class HttpReceiver:
    """A real HTTP server that records requests and answers from a script, then like `always`
    (by default `default_status` with the body `ok`, as a Slack incoming webhook does)."""

    default_status: int = 200
    requests: list[ReceivedRequest] = field(default_factory=list)
    _script: deque[Reply | Hostile] = field(default_factory=deque)
    _always: Reply | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def script(self, *answers: int | tuple[int, bytes] | Reply | Hostile) -> None:
        """Queue answers: `script(500, 200)`, `script((400, b"invalid_payload"))`,
        `script((429, b"slow down", {"Retry-After": "3600"}))` or a hostile writer (`drip`, `huge`, `garbage`)."""
        with self._lock:
            for answer in answers:
                self._script.append(answer if callable(answer) else _reply(answer))

    def always(self, answer: int | tuple[int, bytes] | Reply | None) -> None:
        """Answer every request like this once the script is used up: `always((404, b"no_service"))`;
        None goes back to `default_status`."""
        with self._lock:
            self._always = None if answer is None else _reply(answer)

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self.requests)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def _answer(self, request: ReceivedRequest) -> Reply | Hostile:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
            return self._always or (self.default_status, b"ok", {})

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._answer(ReceivedRequest(self.command, self.path, headers, body))
                if callable(answer):
                    answer(self)
                    return
                status, reply, extra = answer
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if reply.startswith(b"{") else "text/plain"
                )
                self.send_header("Content-Length", str(len(reply)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="http-receiver",
            daemon=True,
        )  # the poll interval is how long shutdown() waits at teardown
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver
