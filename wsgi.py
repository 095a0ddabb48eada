"""Entry point for gunicorn (`gunicorn wsgi:app`) and the `flask --app wsgi` CLI."""
from app import create_app
from app.tuning import tune_gc

app = create_app()
tune_gc()
