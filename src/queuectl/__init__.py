"""queuectl: a command-line background job queue on SQLite or MongoDB."""

__version__ = "0.1.0"
