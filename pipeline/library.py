"""What a library call needs beyond a run: the article from whichever argument was given, the
settings checked as `counterpoint run` checks its options, and a coroutine run from plain code.

api.generate_brief and api.agenerate_brief are the surface; this module holds their parts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from . import defaults
from .article import Article, from_text, with_metadata
from .errors import ConfigError, InputError
from .fetch import FetchOptions

T = TypeVar("T")
P = ParamSpec("P")


def check_bounds(**values: float | None) -> None:
    """Each value within its defaults.INT_BOUNDS or FLOAT_BOUNDS (None: not given), as the CLI's
    options check them."""
    for name, value in values.items():
        if value is None:
            continue
        whole = name in defaults.INT_BOUNDS
        low, high = defaults.INT_BOUNDS[name] if whole else defaults.FLOAT_BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise ConfigError(f"{name} must be a {'whole number' if whole else 'number'}, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{name} must be {span}, not {value!r}")


def check_response_format(response_format: str) -> None:
    if response_format not in defaults.RESPONSE_FORMATS:
        choices = ", ".join(defaults.RESPONSE_FORMATS)
        raise ConfigError(f"response_format must be one of {choices}, not {response_format!r}")


def fetch_options(timeout: float, max_bytes: int, allow_private_hosts: bool) -> FetchOptions:
    """A library call's fetch settings: a refused private host names the keyword, not the CLI flag."""
    return FetchOptions(timeout, max_bytes, allow_private_hosts, allow_private_name="allow_private_hosts=True")


def load_article(
    *,
    text: str | None,
    html: str | bytes | None,
    path: str | Path | None,
    url: str | None,
    metadata: dict[str, str | None],
    max_chars: int,
    truncate: bool,
    encoding: str | None,
    fetch: Any,
) -> Article:
    """The article from exactly one of text, html, path or url, read as the CLI reads it (HTML
    through the same extractor), with the metadata the caller gave in place of what was detected.
    Blocking (a file, a download): the async API calls it on a worker thread."""
    from . import sources, web

    sources_given = (("text", text), ("html", html), ("path", path), ("url", url))
    given = [name for name, value in sources_given if value is not None]
    if not given:
        raise InputError("no article given; pass its text=, html=, path= or url=")
    if len(given) > 1:
        raise ConfigError(f"pass one article, not {' and '.join(f'{name}=' for name in given)}")
    for name, value in metadata.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"{name}= takes a str, not {type(value).__name__}")
    if text is not None:
        if not isinstance(text, str):
            raise InputError(f"text= takes a str, not {type(text).__name__}; pass a page's bytes as html=")
        article = from_text(text, "<text>", max_chars=max_chars, truncate=truncate)
    elif html is not None:
        page = web.decode_html(html, "<html>", encoding=encoding) if isinstance(html, bytes) else html
        article = web.from_html(page, "<html>", max_chars=max_chars, truncate=truncate)
    elif path is not None:
        if sources.is_url(str(path)):
            raise ConfigError(f"path= takes a file, not the URL {str(path)!r}; pass it as url=")
        if str(path) == "-":  # the CLI's stdin; a library call reads no stream it was not given
            raise InputError("path='-' would read stdin; read it yourself and pass the text as text=")
        article = sources.load(str(path), max_chars=max_chars, truncate=truncate, encoding=encoding)
    else:
        if not sources.is_url(str(url)):
            raise ConfigError(f"url= takes an http(s) URL, not {url!r}; pass a file as path=")
        article = sources.load(str(url), max_chars=max_chars, truncate=truncate, encoding=encoding, fetch=fetch)
    return with_metadata(article, **metadata)


def run_blocking(start: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `start()` makes to its end and return its result.

    With no event loop running in this thread, that is asyncio.run. Inside a running loop (a
    notebook, an async web handler) asyncio.run would fail, so the coroutine runs in its own loop
    on a worker thread while this thread waits: the caller's loop is blocked meanwhile, which is
    why async code should await `agenerate_brief` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(start())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="counterpoint") as pool:
        return pool.submit(lambda: asyncio.run(start())).result()


def blocking(function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The plain-call form of a coroutine function, with the same parameters (which IDEs show)."""

    @wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_blocking(lambda: function(*args, **kwargs))

    return call
