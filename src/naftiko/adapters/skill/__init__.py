"""The skill adapter: its plan (``plan``) and the catalogue app serving it (``app``)."""
