"""Outgoing mail: the outbox, and its delivery over SMTP by a background job.

Public API:
- `send_mail(to, subject, text, *, html=None, kind="", venue_id=None, dedup_key=None, confidential=False)`
  → `OutboxMessage`. Adds the message to the current session, so it commits (or rolls back) with the change
  that caused it, and after the commit delivers it with the job `deliver` (`jobs.enqueue_after_commit`, RQ
  retrying with `DELIVERY_RETRY`). A `dedup_key` already in the outbox returns that message and queues
  nothing: a job that crashed and runs again never emails twice. `to`: one address or several (duplicates
  and blanks dropped); `ValueError` when none is valid. `confidential`: the body concerns a private event
  (see `readable_by`); keep private details out of `subject`, which every admin sees in the outbox list.
- `deliver(message_id, retry=None)`: job. Without `MAIL_SERVER` the message stays in the outbox (the default:
  the admins read it on the outbox page). Otherwise it claims the message (two deliveries never send it
  twice), sends it over SMTP and sets `sent_at`; on a failure it records `attempts`/`last_error` and raises
  `DeliveryFailed`, so RQ retries. A sent message is left alone. (`retry` is RQ's option, consumed by RQ
  when queued; run inline under `SYNC_JOBS` it arrives here and means nothing.)
- `build_email(message, settings)` → `email.message.EmailMessage`: text, plus the html alternative when there
  is one; `From`, `To`, `Subject`, `Date` (the message's creation), `Message-ID` (fixed at creation, so a
  retry sends the same message), `Auto-Submitted: auto-generated` (RFC 3834: no auto-replies).
- `MailSettings.from_config(config)`; `mail_configured()` → bool; `MailConfigError`, `DeliveryFailed`.
- Outbox queries for the admin page: `recent(venue_id, before=None, limit=50)` → [OutboxMessage] newest
  first (the venue's and installation-wide ones); `readable_by(message, viewer, venue)` → whether `viewer`
  may read the body.

Settings (`webapp.config`, from the environment): `MAIL_SERVER` (empty: outbox only), `MAIL_PORT` (default
465 with `MAIL_SSL`, 587 with `MAIL_STARTTLS`, else 25), `MAIL_USERNAME`, `MAIL_PASSWORD`, `MAIL_STARTTLS`,
`MAIL_SSL` (implicit TLS), `MAIL_CA_BUNDLE` (CA file to verify the server; default the system's),
`MAIL_FROM` (default "Roomsync <roomsync@localhost>"), `MAIL_TIMEOUT` (seconds, default 10). The password is
never logged, stored or shown; errors recorded are the server's replies or the network error.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from flask import current_app
from rq import Retry
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..jobs import enqueue_after_commit
from ..timeutil import now_utc
from .models import OutboxMessage

log = logging.getLogger(__name__)

DEFAULT_FROM = "Roomsync <roomsync@localhost>"
DEFAULT_TIMEOUT = 10.0
# A failed delivery is tried again after 1 min, 5 min, 30 min, 2 h and 6 h (RQ's scheduler runs in every
# worker), then stays failed in the outbox with its error.
DELIVERY_RETRY = Retry(max=5, interval=[60, 300, 1800, 7200, 21600])
# One addr-spec, nothing around it ("user@localhost" included: local relays accept it).
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_TRUE = {"1", "true", "yes", "on"}


class MailConfigError(ValueError):
    """A MAIL_* setting is unusable; the message says which and why (never its value for the password)."""


class DeliveryFailed(RuntimeError):
    """An SMTP delivery failed; the outbox message records why. Raised so RQ retries the job."""


def _flag(value) -> bool:
    return value is True or str(value or "").strip().lower() in _TRUE


@dataclass(frozen=True)
class MailSettings:
    server: str = ""
    port: int = 25
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False
    ssl: bool = False
    ca_bundle: str = ""
    sender: str = DEFAULT_FROM
    timeout: float = DEFAULT_TIMEOUT

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1] or parseaddr(DEFAULT_FROM)[1]

    @classmethod
    def from_config(cls, config) -> MailSettings:
        use_ssl, starttls = _flag(config.get("MAIL_SSL")), _flag(config.get("MAIL_STARTTLS"))
        if use_ssl and starttls:
            raise MailConfigError("Set MAIL_SSL (implicit TLS, usually port 465) or MAIL_STARTTLS (usually port "
                                  "587), not both.")
        raw_port = str(config.get("MAIL_PORT") or "").strip()
        try:
            port = int(raw_port) if raw_port else (465 if use_ssl else 587 if starttls else 25)
        except ValueError:
            raise MailConfigError(f"MAIL_PORT must be a port number, not {raw_port!r}.") from None
        if not 0 < port < 65536:
            raise MailConfigError(f"MAIL_PORT must be between 1 and 65535, not {port}.")
        raw_timeout = str(config.get("MAIL_TIMEOUT") or "").strip()
        try:
            timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT
        except ValueError:
            raise MailConfigError(f"MAIL_TIMEOUT must be a number of seconds, not {raw_timeout!r}.") from None
        sender = str(config.get("MAIL_FROM") or "").strip() or DEFAULT_FROM
        if not _EMAIL.match(parseaddr(sender)[1] or ""):
            raise MailConfigError(f"MAIL_FROM must be an address, e.g. \"Roomsync <rooms@example.org>\", not "
                                  f"{sender!r}.")
        return cls(server=str(config.get("MAIL_SERVER") or "").strip(), port=port,
                   username=str(config.get("MAIL_USERNAME") or ""), password=str(config.get("MAIL_PASSWORD") or ""),
                   starttls=starttls, ssl=use_ssl, ca_bundle=str(config.get("MAIL_CA_BUNDLE") or "").strip(),
                   sender=sender, timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT)


def mail_configured() -> bool:
    return bool(str(current_app.config.get("MAIL_SERVER") or "").strip())


# ---------------------------------------------------------------------------------------------- the outbox


def _recipients(to: str | Iterable[str]) -> list[str]:
    addresses = [to] if isinstance(to, str) else list(to or [])
    seen, kept = set(), []
    for address in addresses:
        address = (address or "").strip()
        if not _EMAIL.match(address) or address.lower() in seen:
            continue
        seen.add(address.lower())
        kept.append(address)
    return kept


def _one_line(text: str, limit: int = 255) -> str:
    """Header text: an event subject from Outlook may carry line breaks, which must never reach a header."""
    return " ".join((text or "").split())[:limit]


def _message_id() -> str:
    """Fixed at creation (a retried delivery repeats it); the domain is MAIL_FROM's, read leniently here: a
    bad MAIL_FROM is reported by the delivery, not by the change that wrote the message."""
    sender = parseaddr(str(current_app.config.get("MAIL_FROM") or "") or DEFAULT_FROM)[1]
    return make_msgid("roomsync", domain=_domain(sender if _EMAIL.match(sender or "") else "roomsync@localhost"))


def _dedup_key(key: str | None) -> str | None:
    """Keys embed provider ids, which can be long: past the column's width the tail becomes its digest (still
    one key per event, whatever its length)."""
    if not key or len(key) <= 255:
        return key or None
    return f"{key[:190]}~{hashlib.sha256(key.encode()).hexdigest()}"


def send_mail(to: str | Iterable[str], subject: str, text: str, *, html: str | None = None, kind: str = "",
              venue_id: int | None = None, dedup_key: str | None = None,
              confidential: bool = False) -> OutboxMessage:
    dedup_key = _dedup_key(dedup_key)
    if dedup_key:
        existing = db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key))
        if existing is not None:
            log.info("outbox: %s already holds message %s; nothing sent again", dedup_key, existing.id)
            return existing
    recipients = _recipients(to)
    if not recipients:
        raise ValueError("send_mail needs at least one valid recipient address")
    message = OutboxMessage(to=recipients, subject=_one_line(subject), text=text, html=html or None,
                            kind=kind[:40], venue_id=venue_id, dedup_key=dedup_key or None,
                            confidential=confidential, rfc_message_id=_message_id(), created_at=now_utc())
    try:
        # A savepoint: a concurrent job that stored the same dedup_key first makes ours a no-op, and the
        # caller's own changes in this transaction stay.
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        existing = db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key))
        if existing is None:
            raise
        log.info("outbox: %s was stored concurrently as message %s; nothing sent again", dedup_key, existing.id)
        return existing
    enqueue_after_commit(deliver, message.id, retry=DELIVERY_RETRY)
    log.info("outbox: message %s (%s) for %d recipient(s) added", message.id, kind or "mail", len(recipients))
    return message


def recent(venue_id: int | None, *, before: int | None = None, limit: int = 50) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(or_(OutboxMessage.venue_id == venue_id, OutboxMessage.venue_id.is_(None)))
    if before is not None:
        query = query.where(OutboxMessage.id < before)
    return list(db.session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))


def readable_by(message: OutboxMessage, viewer, venue) -> bool:
    """The body of a confidential message (about someone's private event) is for its recipients; admins read
    it only where the venue lets them see private titles (`booking.privacy`)."""
    if not message.confidential:
        return True
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return False
    if viewer.email.lower() in {address.lower() for address in message.to or []}:
        return True
    return bool(viewer.is_admin and venue is not None and venue.admins_see_private)


# ---------------------------------------------------------------------------------------------- delivery


def build_email(message: OutboxMessage, settings: MailSettings) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = settings.sender
    email["To"] = [Address(addr_spec=address) for address in message.to]
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = message.rfc_message_id or make_msgid("roomsync", domain=_domain(settings.sender_address))
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.text)
    if message.html:
        email.add_alternative(message.html, subtype="html")
    return email


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _lease(settings: MailSettings) -> timedelta:
    # Long enough for connect + TLS + AUTH + DATA, each bounded by the timeout.
    return timedelta(seconds=settings.timeout * 4 + 30)


def _claim(message_id: int, settings: MailSettings) -> bool:
    """Take the message for this delivery, atomically on both databases: one UPDATE that matches only an
    unsent message nobody is sending right now. Committed at once, so others see the claim."""
    now = now_utc()
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None),
               or_(OutboxMessage.sending_until.is_(None), OutboxMessage.sending_until < now))
        .values(sending_until=now + _lease(settings), attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _describe(error: BaseException, settings: MailSettings) -> str:
    """What went wrong, for the outbox page and the log: the server's reply or the network error. Never the
    credentials (smtplib's own messages do not carry them, and we never turn on its debug output)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in error.recipients.items())
        return f"every recipient was refused ({refused})"
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"the server refused the MAIL_USERNAME / MAIL_PASSWORD: {error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__}: {error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {settings.server}:{settings.port} failed: {error.reason or error}"
    if isinstance(error, (TimeoutError, OSError)) and not isinstance(error, smtplib.SMTPException):
        return f"could not reach {settings.server}:{settings.port}: {error.strerror or error or type(error).__name__}"
    return f"{type(error).__name__}: {error}"


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _transmit(settings: MailSettings, email: EmailMessage, recipients: list[str]) -> dict:
    """One SMTP session; returns the recipients the server refused (the others got the message)."""
    context = ssl.create_default_context(cafile=settings.ca_bundle or None) if (settings.ssl or settings.starttls) \
        else None
    if settings.ssl:
        smtp = smtplib.SMTP_SSL(settings.server, settings.port, timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.server, settings.port, timeout=settings.timeout)
    try:
        smtp.ehlo()
        if settings.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password)
        return smtp.send_message(email, from_addr=settings.sender_address, to_addrs=recipients)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):  # the message is delivered (or not) already; QUIT is courtesy
            smtp.close()


def deliver(message_id: int, retry=None) -> None:  # noqa: ARG001 - `retry` is RQ's (see the docstring)
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.sent_at is not None:
        return
    if not mail_configured():
        log.info("outbox: message %s kept in the outbox (MAIL_SERVER is not set)", message_id)
        return
    try:
        settings = MailSettings.from_config(current_app.config)
    except MailConfigError as error:
        _record_failure(message, str(error))
        raise DeliveryFailed(f"outbox message {message_id}: {error}") from error
    if not _claim(message_id, settings):
        log.info("outbox: message %s is sent or being sent by another delivery; nothing to do", message_id)
        return
    message = db.session.get(OutboxMessage, message_id, populate_existing=True)
    try:
        refused = _transmit(settings, build_email(message, settings), list(message.to))
    except (smtplib.SMTPException, OSError, ValueError) as error:
        why = _describe(error, settings)
        _record_failure(message, why)
        log.warning("outbox: message %s not delivered through %s:%s (attempt %s): %s", message_id,
                    settings.server, settings.port, message.attempts, why)
        raise DeliveryFailed(f"outbox message {message_id}: {why}") from error
    message.sent_at = now_utc()
    message.sending_until = None
    message.last_error = ("refused by the server: " + "; ".join(
        f"{address}: {code} {_text(reply)}" for address, (code, reply) in refused.items())) if refused else ""
    db.session.commit()
    log.info("outbox: message %s delivered through %s:%s", message_id, settings.server, settings.port)


def _record_failure(message: OutboxMessage, why: str) -> None:
    message.last_error = why[:2000]
    message.sending_until = None
    db.session.commit()
