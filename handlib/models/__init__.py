"""The papers' networks. Build any of them by name through :mod:`handlib.models.registry`."""
