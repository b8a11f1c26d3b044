"""Every default value, once. Imports nothing, so any module (and `--help`) can read it for free.

The CLI shows these in `--help`; the library uses the same values when an option is not passed.
"""

MODEL = "gpt-4.1-mini"
RESPONSE_FORMAT = "auto"  # try json_schema, step down to json_object, then to a schema in the prompt
TIMEOUT = 120.0  # seconds for one model call
LOCAL_TIMEOUT = 600.0  # seconds for one call to a local CPU model (--local), which queues and is slow
CONCURRENCY = 8  # model requests in flight at once
BATCH_CONCURRENCY = 16  # model requests in flight at once across all the articles of a batch
LOCAL_CONCURRENCY = 1  # llama.cpp answers one request at a time
MAX_CLAIMS = 8
REASKS = 2  # re-asks after an output fails validation
MAX_RETRIES = 4  # transport retries of one call (timeout, dropped connection, 429, 5xx)
MAX_CHARS = 60_000  # longest article accepted (see --truncate)
FETCH_TIMEOUT = 20.0  # seconds for a whole URL download
MAX_BYTES = 5_000_000  # largest page a URL may return
RUNS_DIR = "runs"


def max_calls(max_claims: int, reasks: int) -> int:
    """The call budget when none is given: the brief plus every unit's re-asks and a few transport retries."""
    return (max_claims + 2) * (reasks + 2) * 2
