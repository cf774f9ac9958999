"""Control plane services: configuration, not traffic. Used by the admin API and the CLI."""
