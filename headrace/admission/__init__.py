"""Who may call and how much: authentication, limits and quotas, idempotency."""
