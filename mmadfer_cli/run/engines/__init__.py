"""Engines: where chunks run (``local``: this machine's threads; ``ray``: a Ray cluster)."""
