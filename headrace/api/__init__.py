"""HTTP only: the app factory, one router module per resource, SSE and the error envelope."""
