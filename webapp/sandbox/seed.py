"""The demo tenant (to be written). Public API: the DEMO_* constants, `seed_tenant(store)`."""

DEMO_DOMAIN = "roomsync.test"
DEMO_TENANT_ID = "7d3c5a1e-2b4f-4c8e-9a61-0f5b8d2e4c17"
DEMO_CLIENT_ID = "3f9b2c6d-8e1a-4d7f-b5c0-6a2e9d4f1b83"
DEMO_CLIENT_SECRET = "sandbox-demo-secret-8Qp~Zt3v"
DEMO_PERMISSIONS = ["Calendars.ReadWrite", "Place.Read.All", "User.Read.All", "Contacts.Read", "People.Read.All"]


def seed_tenant(store) -> None:
    pass
