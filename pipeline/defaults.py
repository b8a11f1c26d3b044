"""Every default value, once. Imports nothing, so any module (and `--help`) can read it for free.

The CLI shows these in `--help`; the library uses the same values when an option is not passed.
"""

MODEL = "gpt-4.1-mini"
RESPONSE_FORMAT = "auto"  # try json_schema, step down to json_object, then to a schema in the prompt
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "prompt")  # what --response-format takes
TIMEOUT = 120.0  # seconds for one model call
LOCAL_TIMEOUT = 600.0  # seconds for one call to a local CPU model (--local), which queues and is slow
CONCURRENCY = 8  # model requests in flight at once
BATCH_CONCURRENCY = 16  # model requests in flight at once across all the articles of a batch
BATCH_API_POLL = 60.0  # seconds: the longest wait between checks of a Batch API job
LOCAL_CONCURRENCY = 1  # llama.cpp answers one request at a time
MAX_CLAIMS = 8
REASKS = 2  # re-asks after an output fails validation
MAX_RETRIES = 4  # transport retries of one call (timeout, dropped connection, 429, 5xx)
MAX_CHARS = 60_000  # longest article accepted (see --truncate)
FETCH_TIMEOUT = 20.0  # seconds for a whole URL download
MAX_BYTES = 5_000_000  # largest page a URL may return
DOCUMENT_MAX_BYTES = 50_000_000  # largest .docx or PDF file read (images make them large)
RUNS_DIR = "runs"


def max_calls(max_claims: int, reasks: int) -> int:
    """The call budget when none is given: the brief plus every unit's re-asks and a few transport retries."""
    return (max_claims + 2) * (reasks + 2) * 2


# The range each setting may take, (lowest, highest) with None for no bound: `counterpoint run`'s
# options and the library's arguments check the same bounds.
INT_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "max_claims": (1, 12),
    "concurrency": (1, 64),
    "reasks": (0, 5),
    "max_retries": (0, 10),
    "max_calls": (1, None),
    "max_chars": (100, None),
    "max_bytes": (1024, None),
}
FLOAT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "timeout": (0.1, None),
    "temperature": (0.0, 2.0),
    "fetch_timeout": (0.1, None),
}
