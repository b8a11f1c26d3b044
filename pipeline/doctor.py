"""`counterpoint doctor`: which model backends this machine can use, and what to do about the rest; the
settings in force and where each comes from; a warning when the endpoint does not list the model."""

from __future__ import annotations

import importlib.metadata
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import config, local
from .endpoints import check_base_url
from .errors import ConfigError

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def api_key(key: str | None) -> Check:
    if key:
        return Check("OpenAI API key", True, "OPENAI_API_KEY is set (not shown)")
    return Check("OpenAI API key", False, "OPENAI_API_KEY is not set; export it to use OpenAI")


def endpoint(base_url: str | None, key: str | None) -> tuple[Check, list[str] | None]:
    """GET <base_url>/models, the cheapest request every OpenAI-compatible server answers; the
    check, and the model names listed (None when the endpoint gave no list)."""
    name = "OpenAI-compatible endpoint"
    if not base_url:
        return Check(name, False, "no --base-url, OPENAI_BASE_URL or base_url in counterpoint.toml given"), None
    # Shown and probed without user name, password, query or fragment: none belongs on a screen.
    base_url = check_base_url(base_url)
    request = urllib.request.Request(f"{base_url}/models")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            models = [str(m.get("id", "?")) for m in json.loads(response.read()).get("data", [])]
    except urllib.error.HTTPError as exc:
        hint = "check OPENAI_API_KEY" if exc.code in (401, 403) else "check the URL (it usually ends in /v1)"
        return Check(name, False, f"{base_url} answered HTTP {exc.code}; {hint}"), None
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, False, f"{base_url} is not reachable ({reason}); is the server running?"), None
    listed = ", ".join(models[:5]) + (" …" if len(models) > 5 else "")
    return Check(name, True, f"{base_url} answers; models: {listed or 'none listed'}"), models


def model_warning(model: str, models: list[str] | None, source: str) -> str | None:
    """A warning when the endpoint lists its models and `model`, the one `run` would send, is not among them."""
    if models is None or model in models:
        return None
    listed = ", ".join(models[:5]) + (" …" if len(models) > 5 else "") if models else "none"
    return (
        f"the endpoint does not list model {model!r} ({source}); it lists: {listed}. A run would likely "
        "fail with HTTP 404: pass --model, or change where the model is set"
    )


def shown_settings(settings: list[config.Setting]) -> list[config.Setting]:
    """The settings as doctor prints them: a base URL without credentials, paths as text."""
    shown = []
    for setting in settings:
        value = setting.value
        if setting.name == "base_url" and setting.source != "default":
            value = check_base_url(str(value))
        shown.append(config.Setting(setting.name, str(value) if isinstance(value, Path) else value, setting.source))
    return shown


def local_runtime() -> Check:
    name = "local runtime (llama.cpp)"
    missing = local.missing_runtime()
    if missing:
        return Check(name, False, f"missing {', '.join(missing)}; install with: {local.LOCAL_INSTALL}")
    version = importlib.metadata.version("llama-cpp-python")
    return Check(name, True, f"llama-cpp-python {version} with its server")


def demo_model() -> Check:
    name = "demo model (SmolLM2-135M)"
    try:
        path = local.demo_model_path()
    except ConfigError as exc:
        return Check(name, False, str(exc))
    return Check(name, True, f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


@dataclass(frozen=True)
class Diagnosis:
    checks: list[Check]
    warnings: list[str]


def diagnose(base_url: str | None, key: str | None, model: config.Setting | None = None) -> Diagnosis:
    """The backends' checks, and a warning when the endpoint does not list `model`."""
    endpoint_check, models = endpoint(base_url, key)
    checks = [api_key(key), endpoint_check, local_runtime(), demo_model()]
    warning = model_warning(str(model.value), models, model.source) if model is not None else None
    return Diagnosis(checks, [warning] if warning else [])


def usable_backends(checks: list[Check], base_url_source: str = "option --base-url") -> list[str]:
    """Backends `counterpoint run` can use, by the option that selects each; the endpoint by where
    its URL came from (the option, OPENAI_BASE_URL, counterpoint.toml)."""
    by_name = {check.name: check.ok for check in checks}
    usable = []
    if by_name["OpenAI API key"]:
        usable.append("OpenAI (default)")
    if by_name["OpenAI-compatible endpoint"]:
        usable.append("--base-url" if base_url_source.startswith("option") else f"base_url ({base_url_source})")
    if by_name["local runtime (llama.cpp)"] and by_name["demo model (SmolLM2-135M)"]:
        usable.append("--local")
    elif by_name["local runtime (llama.cpp)"]:
        usable.append("--local --model-file PATH.gguf")
    return usable
