"""Which model serves a request: the registry of served models (routing policies to come)."""
