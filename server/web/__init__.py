"""The owner's dashboard and JSON API (FastAPI): `server.web.app.create_app`."""
