"""Connecting a venue to a calendar provider (Microsoft 365) and the directory features built on it.

- `models`: `IntegrationSettings` (one per venue), `ProviderIdentity` (Roomsync user ↔ provider user),
  `UserPhoto`.
- `prerequisites`: pure checks a venue must pass before two-way sync (grid, pricing, payments).
- `provider`: the only module that calls the Graph client (a thin adapter over `webapp.graph`).
- `validation`: the live tests run when the settings are saved.
- `operations`: saving settings, provider users, the active-calendar check, photo sync (people's, and paired
  rooms' into `booking.models.SpacePhoto`).
- `photos`: who has a photo to show (one query per page) and initials for everyone else.
- `cache`: the short-lived per-user cache and rate limit of the attendee lookup (Redis, or in process).
- `forms`: the settings form.
- `jobs`: RQ jobs (ids in, idempotent), and the hourly cron job refreshing paired rooms' photos.
- `views`: blueprints "integration" (/admin/integration), "people" (/people), "webhooks" (/webhooks).
"""
