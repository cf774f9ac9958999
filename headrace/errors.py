"""The one exception hierarchy. Each maps to an HTTP status and the OpenAI error envelope.

    HeadraceError                 500 server_error
    ├── InvalidRequestError       400 invalid_request_error (param names the field)
    │   ├── ContextLengthError    400 code=context_length_exceeded
    │   └── ContentPolicyError    400 code=content_policy_violation (moderation blocked it)
    ├── AuthenticationError       401 invalid_request_error, code=invalid_api_key
    ├── PermissionDeniedError     403
    ├── NotFoundError             404 (code=model_not_found for models)
    ├── ConflictError             409
    ├── PayloadTooLargeError      413
    ├── RateLimitError            429 (headers carry Retry-After)
    │   └── QuotaExceededError    429 code=insufficient_quota (a budget is spent)
    ├── BadGatewayError           502 code=upstream_error (an upstream failed us)
    └── ServiceUnavailableError   503

Layers below the API raise these; `api/errors.py` turns them into responses in one place.
"""

from __future__ import annotations


class HeadraceError(Exception):
    status_code = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def envelope(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(HeadraceError):
    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthError(InvalidRequestError):
    default_code = "context_length_exceeded"


class ContentPolicyError(InvalidRequestError):
    default_code = "content_policy_violation"


class AuthenticationError(HeadraceError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(HeadraceError):
    status_code = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFoundError(HeadraceError):
    status_code = 404
    error_type = "invalid_request_error"


class ConflictError(HeadraceError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLargeError(HeadraceError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(HeadraceError):
    status_code = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"


class QuotaExceededError(RateLimitError):
    """A budget is spent: waiting a minute will not help, so no `Retry-After`."""

    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class BadGatewayError(HeadraceError):
    status_code = 502
    error_type = "server_error"
    default_code = "upstream_error"


class ServiceUnavailableError(HeadraceError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


def unexpected_error() -> HeadraceError:
    """What a client is told of a bug (the details go to the log, never to the client)."""
    return HeadraceError("The server had an error processing your request.")
