"""The admin area: `views` (blueprint "admin" at /admin, admins only), `forms` (parsing), `operations` (the
rules: venue settings, spaces and their dependencies, users, custom fields)."""
