"""WSGI entry point: `gunicorn app:app` or `flask --app app run`."""

from webapp import create_app

app = create_app()
