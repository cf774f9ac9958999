"""The OpenAI wire format as pydantic models: the single source of truth for shapes we serve."""
