"""JSON API v1: bearer-token authenticated access to spaces and bookings (blueprint `api.views.bp`, mounted at
/api/v1). Modules: `views` (endpoints), `auth` (tokens), `errors` (JSON errors), `schemas` (parsing and
response shapes)."""
