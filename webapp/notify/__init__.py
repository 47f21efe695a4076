"""Outgoing mail (DESIGN "notify/"): every email Roomsync sends goes through the outbox.

- `models`: `OutboxMessage`, the outbox table.
- `mailer`: `send_mail(...)` (adds to the outbox, delivered after the commit), the `deliver` job (SMTP when
  `MAIL_SERVER` is set; otherwise the message stays in the outbox), MIME building, outbox queries.
- `messages`: the real emails — `pair_broken(pair, dedup_key)`, `event_refused(...)`, `event_removed(...)`.
- `views`: the admin outbox page, `/admin/outbox/` (blueprint "notify").
"""
