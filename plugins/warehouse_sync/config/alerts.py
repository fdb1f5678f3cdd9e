"""The ``alerts:`` section of the pipeline file: where alerts go (SMTP, a Slack webhook).

:class:`Alerts` is the value the DAGs and :mod:`warehouse_sync.alerts` use, with every default;
:class:`AlertsSection` is the file's shape of it (only the keys given override the defaults).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator


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
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_to: _Recipients = ()
    smtp_conn_id: str = "smtp_default"
    smtp_from: str = "warehouse-sync@localhost"
    slack_webhook_conn_id: str | None = None


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


class AlertsSection(BaseModel):
    """The file's ``alerts:`` section; :meth:`to_alerts` gives the :class:`Alerts` value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp: Annotated[_SmtpSection | None, BeforeValidator(_empty_is_none)] = None
    slack_webhook: Annotated[_SlackWebhookSection | None, BeforeValidator(_empty_is_none)] = None

    def to_alerts(self) -> Alerts:
        """The channels given, over :class:`Alerts`' defaults."""
        given: dict[str, Any] = {}
        if self.smtp:
            given.update(smtp_to=self.smtp.to, smtp_conn_id=self.smtp.conn_id, smtp_from=self.smtp.sender)
        if self.slack_webhook:
            given.update(slack_webhook_conn_id=self.slack_webhook.conn_id)
        return Alerts(**{k: v for k, v in given.items() if v is not None})
