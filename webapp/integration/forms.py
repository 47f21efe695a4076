"""The integration settings form: it parses what was typed; the rules live in `integration.operations`.

Public API: `IntegrationForm` (`settings_input()`, `load(settings)`).
"""

from __future__ import annotations

from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from ..admin.forms import StorableForm
from .models import PROVIDER_LABELS, PROVIDERS, SYNC_TYPE_LABELS, SYNC_TYPES
from .operations import SettingsInput


class IntegrationForm(StorableForm):
    provider = SelectField("Provider", choices=[SelectChoice(p, PROVIDER_LABELS[p]) for p in PROVIDERS])
    sync_type = SelectField(
        "Sync type", choices=[SelectChoice(s, SYNC_TYPE_LABELS[s]) for s in SYNC_TYPES],
        description="One provider, one tenant and one sync type at a time.",
    )
    butler_email = StringField(
        "Butler", validators=[Length(max=254)],
        description="An ordinary licensed user with a mailbox (not a shared mailbox); it owns the events of "
                    "internal blocks.",
    )
    allow_directory_search = BooleanField(
        "Allow users to search the full organisational directory",
        description="Attendee lookup then also offers everyone in the directory, not only each person's "
                    "contacts and relevant people. Off: people first seen in Outlook get “Unknown” names.",
    )
    sync_photos = BooleanField("Sync and display user photos",
                               description="Photos appear next to names; without one, initials are shown.")
    public_base_url = StringField(
        "Public base URL", validators=[Length(max=500)],
        description="Where Microsoft 365 reaches this Roomsync for change notifications. Empty: the "
                    "PUBLIC_BASE_URL setting.",
    )

    def load(self, settings) -> None:
        self.provider.data, self.sync_type.data = settings.provider, settings.sync_type
        self.butler_email.data = settings.butler_email
        self.allow_directory_search.data = settings.allow_directory_search
        self.sync_photos.data = settings.sync_photos
        self.public_base_url.data = settings.public_base_url or ""

    def settings_input(self) -> SettingsInput:
        return SettingsInput(
            provider=self.provider.data, sync_type=self.sync_type.data,
            butler_email=self.butler_email.data or "",
            allow_directory_search=bool(self.allow_directory_search.data), sync_photos=bool(self.sync_photos.data),
            public_base_url=(self.public_base_url.data or "").strip(),
        )
