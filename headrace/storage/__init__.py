"""Durable state: the schema, migrations and repositories (SQLite embedded, PostgreSQL at scale)."""
