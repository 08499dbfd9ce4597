"""Pydantic models for canary.yaml and prompts/*.yaml. Unknown keys are always rejected."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- canary.yaml


class RetryPolicy(Strict):
    """canary's own retry policy; the SDKs' retries are always off so one attempt is one request."""

    attempts: Annotated[int, Field(ge=0, le=20)] = 3  # retries after the first request
    backoff_s: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] = [30.0, 60.0, 120.0]
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.25  # +-fraction of each delay
    max_retry_after_s: Annotated[float, Field(ge=0)] = 300.0

    def delay(self, retry_number: int) -> float:
        """Base delay before retry `retry_number` (1-based); past the list, keep doubling."""
        if retry_number <= len(self.backoff_s):
            return self.backoff_s[retry_number - 1]
        return self.backoff_s[-1] * 2 ** (retry_number - len(self.backoff_s))


class Price(Strict):
    input_per_mtok: Annotated[float, Field(ge=0)]
    output_per_mtok: Annotated[float, Field(ge=0)]

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


class Defaults(Strict):
    samples: Annotated[int, Field(ge=1, le=1000)] = 3
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 16  # per model
    global_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 64
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    stream: bool = True
    params: dict[str, Any] = {"max_tokens": 1024}
    retry: RetryPolicy = RetryPolicy()


class SimFault(Strict):
    """A scripted failure. With `times`, the first N matching requests fail; otherwise each
    matching request fails with probability `rate`. `from`/`to` limit it to simulated days."""

    kind: Literal[
        "status", "quota", "timeout", "mid_stream", "empty", "bad_tool_args", "huge",
        # a 200 that is not the vendor's shape, and answers that stop early (issue 8, parts 1-3, 5)
        "malformed", "html", "no_stop", "truncated", "refusal", "content_filter",
        "odd_text",  # text that cannot be stored as sent (issue 8, part 4)
    ] = "status"  # fmt: skip
    status: Annotated[int, Field(ge=400, le=599)] = 529
    times: Annotated[int, Field(ge=1)] | None = None
    rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    retry_after_s: Annotated[float, Field(ge=0)] | None = None
    from_day: date | None = Field(None, alias="from")
    to_day: date | None = Field(None, alias="to")
    size: Annotated[int, Field(ge=1)] = 1_000_000  # for kind: huge, characters in the answer (sent lazily)
    # kind: malformed - which 200 body: `[]`, `null`, an object missing required fields, or bytes not UTF-8
    body: Literal["array", "null", "missing_fields", "undecodable"] = "array"
    every: Annotated[int, Field(ge=1)] | None = None  # fire on every Nth matching request (per model)
    should_retry: bool | None = None  # send `x-should-retry: true|false` with this fault's response
    # for kind: odd_text, what the answer, tool arguments and served model carry (canary.sim.oddtext)
    variant: Literal["surrogate", "nul", "invalid_utf8", "bidi", "tool_name", "huge_usage"] = "surrogate"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SimPeriod(Strict):
    """Overrides of the simulated behaviour for a span of simulated days (inclusive)."""

    from_day: date | None = Field(None, alias="from")
    to_day: date | None = Field(None, alias="to")
    quality: Annotated[float, Field(ge=0, le=1)] | None = None
    latency_ms: Annotated[float, Field(ge=0)] | None = None
    token_inflation: Annotated[float, Field(gt=0)] | None = None
    served_model: str | None = None
    fingerprint: str | None = None
    forget_after_turn: Annotated[int, Field(ge=0)] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SimBehaviour(Strict):
    """How the built-in simulator behaves for one model (provider: sim)."""

    quality: Annotated[float, Field(ge=0, le=1)] = 1.0  # probability of the correct answer
    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    token_inflation: Annotated[float, Field(gt=0)] = 1.0
    served_model: str | None = None  # what the response says served it (default: the requested name)
    fingerprint: str | None = None
    # multi_turn: from the turn after this one on, answer as if the system prompt's rule was
    # forgotten (the `wrong` reply), whatever the quality roll says
    forget_after_turn: Annotated[int, Field(ge=0)] | None = None
    seed: int = 0
    periods: list[SimPeriod] = []
    faults: list[SimFault] = []


Provider = Literal["anthropic", "openai", "openai_compatible", "sim"]
DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class ModelConfig(Strict):
    id: Slug
    provider: Provider
    model: Annotated[str, Field(min_length=1)]
    protocol: Literal["anthropic", "openai"] | None = None  # sim only: which wire API/SDK to use
    base_url: str | None = None
    api_key_env: EnvName | None = None
    params: dict[str, Any] = {}
    stream: bool | None = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None
    samples: Annotated[int, Field(ge=1, le=1000)] | None = None
    price: Price | None = None
    retires: date | None = None
    sim: SimBehaviour | None = None

    @model_validator(mode="after")
    def _provider_fields(self) -> ModelConfig:
        if self.provider == "openai_compatible" and not self.base_url:
            raise ValueError("provider openai_compatible needs base_url (the gateway's OpenAI-style /v1 URL)")
        if self.provider != "sim" and self.sim is not None:
            raise ValueError("`sim` settings only apply to provider: sim")
        if self.provider != "sim" and self.protocol is not None:
            raise ValueError("`protocol` only applies to provider: sim (the SDK follows from the provider)")
        return self

    @property
    def wire(self) -> Literal["anthropic", "openai"]:
        """Which wire protocol (and SDK) this model is called through."""
        if self.provider == "sim":
            return self.protocol or "anthropic"
        return "anthropic" if self.provider == "anthropic" else "openai"

    @property
    def key_env(self) -> str | None:
        """The environment variable holding this model's API key, if it needs one."""
        if self.api_key_env:
            return self.api_key_env
        return DEFAULT_KEY_ENV.get(self.provider)


# --------------------------------------------------------------------------- detection and alerts


class DetectConfig(Strict):
    """How a day's pass rate is judged against its own history (see canary.detect)."""

    rule: Literal["sigma", "calibrated"] = "calibrated"  # the paging rule for quality alerts
    # `rule: sigma` - the rolling mean - sigma x sd rule, exactly as first asked for
    sigma: Annotated[float, Field(gt=0)] = 2.0
    window_days: Annotated[int, Field(ge=2, le=365)] = 14
    min_history: Annotated[int, Field(ge=1, le=365)] = 5
    # `rule: calibrated` - tuning knobs of the default detector; see canary.detect
    false_alarms_per_year: Annotated[float, Field(gt=0, le=365)] = 0.9  # design rate (measured ~0.8)
    min_trials: Annotated[int, Field(ge=1)] = 5  # fewer scored trials on a day: quality held (outage)
    baseline_days: Annotated[int, Field(ge=7, le=365)] = 56  # days pooled into the calibrated baseline
    baseline_lag_days: Annotated[int, Field(ge=0, le=60)] = 14  # newest days kept out of the baseline
    min_baseline_days: Annotated[int, Field(ge=3, le=365)] = 14  # days with data needed before judging
    rho_floor: Annotated[float, Field(gt=0, lt=0.5)] = 0.01  # least day-to-day overdispersion assumed
    cusum_window_days: Annotated[int, Field(ge=7, le=365)] = 28  # CUSUM replayed over this many days


class SignalsConfig(Strict):
    """Thresholds for the non-quality signals; each fires its own alert."""

    max_unavailable: Annotated[float, Field(ge=0, le=1)] = 0.2  # unavailable share of a day's samples
    tokens_increase: Annotated[float, Field(gt=0)] = 0.25  # output tokens per task vs the baseline
    latency_p95_increase: Annotated[float, Field(gt=0)] = 1.0  # p95 latency vs the baseline (+100 %)
    latency_p95_min_delta_s: Annotated[float, Field(ge=0)] = 1.0  # and at least this much slower
    cost_per_correct_increase: Annotated[float, Field(gt=0)] = 0.5
    served_model_change: bool = True  # served model name or system fingerprint changed
    retires_within_days: Annotated[int, Field(ge=0)] = 14
    max_age_hours: Annotated[float, Field(gt=0)] = 26.0  # dead man's switch: newest completed run
    baseline_days: Annotated[int, Field(ge=1, le=365)] = 14
    min_baseline_days: Annotated[int, Field(ge=1, le=365)] = 3


class EmailChannel(Strict):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user_env: EnvName | None = None
    password_env: EnvName | None = None
    sender: str = Field("canary@localhost", alias="from")
    to: Annotated[list[str], Field(min_length=1)]
    ca_file: str | None = None  # extra CA bundle for a private mail server; verification stays on
    timeout_s: Annotated[float, Field(gt=0)] = 30.0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SlackChannel(Strict):
    webhook_url_env: EnvName = "SLACK_WEBHOOK_URL"  # the URL is a secret: environment only
    timeout_s: Annotated[float, Field(gt=0)] = 15.0


class WebhookChannel(Strict):
    url: str | None = None
    url_env: EnvName | None = None
    secret_env: EnvName | None = None  # HMAC-SHA256 of the body in X-Canary-Signature
    headers: dict[str, str] = {}
    timeout_s: Annotated[float, Field(gt=0)] = 15.0

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of `url` or `url_env`")
        return self


class AlertsConfig(Strict):
    repeat_hours: Annotated[float, Field(gt=0)] = 24.0
    report_url: str | None = None  # where the published report lives; linked from messages
    log: bool = True
    email: EmailChannel | None = None
    slack: SlackChannel | None = None
    webhook: WebhookChannel | None = None
    delivery_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # per check, before leaving it queued
    give_up_hours: Annotated[float, Field(gt=0, le=720)] = (
        24.0  # a notification still undelivered is `failed`
    )


class ScheduleConfig(Strict):
    """When `canary schedule` (and the cron/systemd recipes) run the canaries.

    Cron expressions are classic 5-field ones, in `timezone` (an IANA name): canary.schedule.cron
    parses them so that the daemon, the systemd timer and `canary status` agree."""

    cron: str | Annotated[list[str], Field(min_length=1)]  # one expression or a list of them
    timezone: str = "UTC"
    misfire_grace_hours: Annotated[float, Field(gt=0, le=168)] = 6.0  # a late start still runs within this

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | list[str]) -> str | list[str]:
        from canary.schedule.cron import CronError, parse_cron  # stdlib-only leaf module

        for expr in [value] if isinstance(value, str) else value:
            try:
                parse_cron(expr)
            except CronError as exc:
                raise ValueError(f"`{expr}`: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError):
            raise ValueError(
                f"unknown timezone `{value}` (use an IANA name such as UTC or Europe/Berlin)"
            ) from None
        return value

    @property
    def expressions(self) -> list[str]:
        return [self.cron] if isinstance(self.cron, str) else list(self.cron)


class HeartbeatConfig(Strict):
    """An outside monitor (Healthchecks.io, Cronitor, Uptime Kuma) pinged at every run's start and
    end (see canary.heartbeat): it notices when no ping comes, which canary itself cannot."""

    url_env: EnvName = "CANARY_HEARTBEAT_URL"  # the ping URL holds a token: environment only
    style: Literal["healthchecks", "cronitor", "uptime_kuma"] = "healthchecks"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0  # per ping, whole request included


class StoreConfig(Strict):
    """`store:` as a mapping: the URL plus the bounds on every database wait (seconds).
    Unset bounds keep the defaults: connect 10, lock 30 (SQLite's busy wait: 5), statement 120."""

    url: str = "sqlite:///canary.db"
    connect_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    lock_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    statement_timeout_s: Annotated[float, Field(gt=0, le=86400)] | None = None

    def timeout_params(self) -> dict[str, float]:
        """The set bounds, named as the store URL's query parameters (canary.store.engine)."""
        names = ("connect_timeout_s", "lock_timeout_s", "statement_timeout_s")
        return {n: v for n in names if (v := getattr(self, n)) is not None}


class ProjectConfig(Strict):
    # a URL, or a mapping with `url:` and timeouts; relative sqlite paths resolve against canary.yaml's folder
    store: StoreConfig = StoreConfig()
    prompts: str = "prompts"
    scorers: str = "scorers"
    reports: str = "reports"
    defaults: Defaults = Defaults()
    models: Annotated[list[ModelConfig], Field(min_length=1)]
    detect: DetectConfig = DetectConfig()
    signals: SignalsConfig = SignalsConfig()
    alerts: AlertsConfig = AlertsConfig()
    schedule: ScheduleConfig | None = None  # `canary schedule`, cron and systemd recipes
    heartbeat: HeartbeatConfig | None = None  # pings an outside dead man's switch at run start/end

    @field_validator("store", mode="before")
    @classmethod
    def _store_url_form(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    def model_settings(self, model: ModelConfig) -> ResolvedModel:
        d = self.defaults
        return ResolvedModel(
            config=model,
            samples=model.samples or d.samples,
            concurrency=model.concurrency or d.concurrency,
            timeout_s=model.timeout_s or d.timeout_s,
            stream=d.stream if model.stream is None else model.stream,
            params={**d.params, **model.params},
            retry=d.retry,
        )


class ResolvedModel(BaseModel):
    """A model with the defaults filled in: what the runner actually uses."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: ModelConfig
    samples: int
    concurrency: int
    timeout_s: float
    stream: bool
    params: dict[str, Any]
    retry: RetryPolicy


# --------------------------------------------------------------------------- prompts/*.yaml


class ToolDecl(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}


class SimCall(Strict):
    name: str
    arguments: dict[str, Any] = {}


class SimTurn(Strict):
    answer: str
    wrong: str | None = None


class SimAnswers(Strict):
    """How the built-in simulator answers this canary; not part of the canary's hash."""

    answer: str | None = None  # single; tool_call: the final answer after the tool result
    wrong: str | None = None
    turns: list[SimTurn] = []  # multi_turn: one per user turn
    call: SimCall | None = None  # tool_call: the correct call
    wrong_call: SimCall | None = None  # tool_call: the wrong call (default: answer without calling)


class CanaryBase(Strict):
    id: Slug
    description: str = ""
    tags: list[str] = []
    samples: Annotated[int, Field(ge=1, le=1000)] | None = None
    system: str | None = None
    scorers: Annotated[list[dict[str, Any]], Field(min_length=1)]
    sim: SimAnswers | None = None
    # A reply cut at max_tokens (stop_reason max_tokens / finish_reason length) fails with
    # reason `truncated` unless this is true; then it is judged by the scorers like any other.
    allow_truncated: bool = False

    @field_validator("scorers")
    @classmethod
    def _one_key_each(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in value:
            if len(entry) != 1:
                raise ValueError("each scorer is a mapping with exactly one key, the scorer's name")
        return value

    def content_hash(self) -> str:
        """Hash of what is sent and how it is judged: editing either starts a new series."""
        payload = self.model_dump(
            mode="json", exclude={"description", "tags", "samples", "sim", "id", "allow_truncated"}
        )
        if self.allow_truncated:  # only when set, so existing canaries keep their hash
            payload["allow_truncated"] = True
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class SingleCanary(CanaryBase):
    kind: Literal["single"] = "single"
    prompt: Annotated[str, Field(min_length=1)]


class Turn(Strict):
    user: Annotated[str, Field(min_length=1)]
    name: str | None = None


class MultiTurnCanary(CanaryBase):
    kind: Literal["multi_turn"]
    turns: Annotated[list[Turn], Field(min_length=1)]


class ToolCallCanary(CanaryBase):
    kind: Literal["tool_call"]
    prompt: Annotated[str, Field(min_length=1)]
    tools: Annotated[list[ToolDecl], Field(min_length=1)]
    tool_results: dict[str, Any] = {}  # tool name -> result fed back; then the final answer is scored


Canary = SingleCanary | MultiTurnCanary | ToolCallCanary
CANARY_KINDS: dict[str, type[CanaryBase]] = {
    "single": SingleCanary,
    "multi_turn": MultiTurnCanary,
    "tool_call": ToolCallCanary,
}
