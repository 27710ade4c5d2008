"""Settings, database, storage and deployment glue."""
