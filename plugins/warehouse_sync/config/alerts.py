"""The ``alerts:`` section of the pipeline file: where alerts go, and which pipeline's go where.

Channels: ``smtp`` and ``slack_webhook`` (built in), and any Airflow notifier under ``channels:``,
named by its class path with its arguments (a webhook through ``HttpNotifier``, apprise, PagerDuty,
...). A notifier's templated arguments may use ``{{ alert_subject }}``, ``{{ alert_text }}`` (the
message, one fact per line) and the task context. Routes: ``default:`` lists the channels of a
pipeline that names none (all channels when absent); a pipeline's own ``alerts: [names]`` replaces it::

    alerts:
      smtp: {to: [data-team@example.com], conn_id: smtp_default}
      channels:
        oncall:
          notifier: airflow.providers.http.notifications.HttpNotifier
          args: {http_conn_id: oncall_http, endpoint: /alert, json: {text: "{{ alert_subject }}"}}
      default: [smtp]
    pipelines:
      - name: orders
        alerts: [smtp, oncall]

:class:`Alerts` is the value the DAGs and :mod:`warehouse_sync.alerts` use, with every default;
:class:`AlertsSection` is the file's shape of it (only the keys given override the defaults).
Secrets stay in Airflow connections: a channel's arguments name connection ids, never passwords.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _email_address(value: str) -> str:
    if "@" not in value:
        raise ValueError(f"expected an e-mail address, got {value!r}")
    return value


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, dict) and not value else value


_EmailAddress = Annotated[str, AfterValidator(_email_address)]
_Recipients = Annotated[tuple[_EmailAddress, ...], BeforeValidator(_one_or_many)]


class Channel(BaseModel):
    """An alert channel that is any Airflow notifier.

    Attributes:
        name: The channel's name in routes (``default:`` and a pipeline's ``alerts:``).
        notifier: The notifier's class path (a ``BaseNotifier`` subclass), imported when an alert is sent.
        args: Its keyword arguments; templated ones may use ``{{ alert_subject }}`` and ``{{ alert_text }}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    notifier: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    args: dict[str, Any] = Field(default_factory=dict)


BUILT_IN = ("smtp", "slack_webhook")


class Alerts(BaseModel):
    """Where alerts go (each channel optional; none configured means log only).

    The file gives them as ``alerts: {smtp: {to, conn_id, from}, slack_webhook: {conn_id}}``.

    Attributes:
        smtp_to: Recipients of alert e-mails (SMTP via the ``smtp_conn_id`` Airflow connection);
            empty means no e-mail.
        smtp_conn_id: Airflow connection of the SMTP server.
        smtp_from: Sender address.
        slack_webhook_conn_id: Airflow connection of a Slack incoming webhook (URL in its password),
            or ``None`` for no Slack message.
        channels: The other channels, any Airflow notifier each (:class:`Channel`).
        default_route: The channels of a pipeline that names none, or ``None``: every channel.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_to: _Recipients = ()
    smtp_conn_id: str = "smtp_default"
    smtp_from: str = "warehouse-sync@localhost"
    slack_webhook_conn_id: str | None = None
    channels: tuple[Channel, ...] = ()
    default_route: tuple[str, ...] | None = None

    def channel_names(self) -> tuple[str, ...]:
        """Every configured channel's name: ``smtp`` and ``slack_webhook`` when configured, then ``channels``."""
        built_in = (("smtp",) if self.smtp_to else ()) + (("slack_webhook",) if self.slack_webhook_conn_id else ())
        return built_in + tuple(c.name for c in self.channels)

    def routed(self, names: tuple[str, ...] | None) -> "Alerts":
        """Only the channels named (``None``: the default route), as an :class:`Alerts` with no route left.

        Raises:
            ValueError: A name is not a configured channel (the message lists the known ones).
        """
        names = self.default_route if names is None else names
        if names is None:
            return self.model_copy(update={"default_route": None})
        unknown = [n for n in names if n not in self.channel_names()]
        if unknown:
            raise ValueError(f"unknown alert channel(s) {', '.join(unknown)}; configured: "
                             f"{', '.join(self.channel_names()) or 'none'}")
        return Alerts(smtp_to=self.smtp_to if "smtp" in names else (), smtp_conn_id=self.smtp_conn_id,
                      smtp_from=self.smtp_from,
                      slack_webhook_conn_id=self.slack_webhook_conn_id if "slack_webhook" in names else None,
                      channels=tuple(c for c in self.channels if c.name in names))


# The file's shape of the alerts section; only the keys given override Alerts' defaults.
class _SmtpSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: _Recipients = Field((), validate_default=True)
    conn_id: str | None = None
    sender: str | None = Field(None, alias="from")

    @field_validator("to")
    @classmethod
    def _at_least_one(cls, to: tuple[str, ...]) -> tuple[str, ...]:
        if not to:
            raise ValueError("at least one recipient is required")
        return to


class _SlackWebhookSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conn_id: str | None = None


class _ChannelSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    notifier: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    args: dict[str, Any] = Field(default_factory=dict)


class AlertsSection(BaseModel):
    """The file's ``alerts:`` section; :meth:`to_alerts` gives the :class:`Alerts` value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp: Annotated[_SmtpSection | None, BeforeValidator(_empty_is_none)] = None
    slack_webhook: Annotated[_SlackWebhookSection | None, BeforeValidator(_empty_is_none)] = None
    channels: dict[str, _ChannelSection] = Field(default_factory=dict)
    default: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _routes_name_channels(self) -> "AlertsSection":
        clash = [name for name in self.channels if name in BUILT_IN]
        if clash:
            raise ValueError(f"channel name(s) {', '.join(clash)} are the built-in channels' own: choose another")
        if self.default is not None:
            self.to_alerts().routed(self.default)  # raises on an unknown name
        return self

    def to_alerts(self) -> Alerts:
        """The channels given, over :class:`Alerts`' defaults."""
        given: dict[str, Any] = {}
        if self.smtp:
            given.update(smtp_to=self.smtp.to, smtp_conn_id=self.smtp.conn_id, smtp_from=self.smtp.sender)
        if self.slack_webhook:
            given.update(slack_webhook_conn_id=self.slack_webhook.conn_id)
        given["channels"] = tuple(Channel(name=name, notifier=c.notifier, args=c.args)
                                  for name, c in self.channels.items())
        given["default_route"] = self.default
        return Alerts(**{k: v for k, v in given.items() if v is not None})
