"""One exception hierarchy for the whole package. No Click here: cli/ maps these to exit codes."""

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


class NoBatchAPI(ModelError):
    """404 to a Batch API upload: the endpoint has no /v1/files and /v1/batches."""


class ModelNotFound(ModelError):
    """404 from the endpoint: the model name or base URL is wrong."""


class LocalBackendError(CounterpointError):
    """The bundled llama.cpp server could not be started or reached."""


class FetchError(InputError):
    """A URL could not be fetched or held no article."""


# Why a unit failed, as the brief records it (`error.kind`; schemas/brief.schema.json lists the same,
# which a test checks):
FAILURE_KINDS = (
    "invalid",  # the reply never passed the schema and the stage's checks within its re-asks
    "malformed",  # the HTTP answer was not a usable chat completion
    "truncated",  # the reply hit max_tokens again after being asked to be shorter
    "refused",  # the model declined (a refusal, or an empty reply)
    "empty",  # the endpoint returned no choices
    "transport",  # timeouts, dropped connections, 408/409/429/5xx after the transport retries, or a
    # server counterpoint runs that has crashed or cannot parse the grammar
    "bad_request",  # the endpoint rejected the request or its response format (another 4xx), not retried
    "budget",  # the --max-calls budget was used up before this unit
    "skipped",  # not attempted: the run stopped early (auth, unknown model), or no claim was analysed
    "interrupted",  # the run was interrupted (Ctrl-C, SIGTERM) before this unit finished
)


class UnitFailed(CounterpointError):
    """One unit of work (extraction, one claim, synthesis) failed; `kind` is one of FAILURE_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in FAILURE_KINDS:  # a bug: the brief could not record it (its schema lists the kinds)
            raise ValueError(f"unknown failure kind {kind!r}; add it to FAILURE_KINDS and the brief schema")
        super().__init__(message)
        self.kind = kind
