"""WSGI entry point: `gunicorn app:app` or `flask --app app run`."""

import gc

from webapp import create_app

app = create_app()

# The app's long-lived objects (models, templates, routes) never become garbage; moving them out of the
# collector's generations keeps full collections from adding 30–70 ms to a random request (bench/README.md).
gc.freeze()
