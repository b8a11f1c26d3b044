"""One exception hierarchy for the whole package. No Click here: cli.py maps these to exit codes."""

from __future__ import annotations


class CounterpointError(Exception):
    """Base class. The message is one line that tells the user what to do."""


class ConfigError(CounterpointError):
    """Missing or contradictory settings (no key, bad option combination, missing extra)."""


class InputError(CounterpointError):
    """The article could not be read or is not usable."""


class RunDirError(CounterpointError):
    """The runs directory or a run id is unusable."""


class ResumeMismatch(CounterpointError):
    """A resumed run's article, prompts, schemas, model or settings differ from the record."""


class ModelError(CounterpointError):
    """The endpoint refused the whole run (auth, unknown model); no retry can help."""


class AuthError(ModelError):
    """401/403 from the endpoint."""


class ModelNotFound(ModelError):
    """404 from the endpoint: the model name or base URL is wrong."""


class LocalBackendError(CounterpointError):
    """The bundled llama.cpp server could not be started or reached."""


class FetchError(InputError):
    """A URL could not be fetched or held no article."""


class UnitFailed(CounterpointError):
    """One unit of work (extraction, one claim, synthesis) failed after its retries.

    `kind` is one of: invalid, malformed (the HTTP answer was not a usable chat completion), truncated,
    refused, empty, transport, bad_request, budget.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
