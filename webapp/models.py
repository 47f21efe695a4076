"""Every model, imported in one place so metadata (and Alembic autogenerate) sees all tables."""

from .auth.models import ApiToken, User  # noqa: F401
from .booking.models import (  # noqa: F401
    Booking,
    CustomField,
    Occurrence,
    OccurrenceException,
    Space,
    SpacePhoto,
    Venue,
    booking_spaces,
    space_dependencies,
)
from .integration.models import IntegrationSettings, ProviderIdentity, UserPhoto  # noqa: F401
from .audit import AuditEntry  # noqa: F401
from .sync.models import EventLink, InitialSync, NotedBooking, Pair, SyncPreview, SyncReportItem  # noqa: F401
from .notify.models import OutboxMessage  # noqa: F401
from .feeds.models import FeedToken  # noqa: F401
from .kiosk.models import Device, EnrolmentCode  # noqa: F401
from .kiosk.checkins import CheckIn, NoShow  # noqa: F401
