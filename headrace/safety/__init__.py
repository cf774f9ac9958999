"""Input and output checks: moderation, personal data, prompt injection, tool calls."""
