"""`counterpoint doctor`: which model backends this machine can use, and what to do about the rest."""

from __future__ import annotations

import importlib.metadata
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import local
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


def endpoint(base_url: str | None, key: str | None) -> Check:
    """GET <base_url>/models, the cheapest request every OpenAI-compatible server answers."""
    name = "OpenAI-compatible endpoint"
    if not base_url:
        return Check(name, False, "no --base-url or OPENAI_BASE_URL given")
    # Shown and probed without user name, password, query or fragment: none belongs on a screen.
    base_url = check_base_url(base_url)
    request = urllib.request.Request(f"{base_url}/models")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            models = [m.get("id", "?") for m in json.loads(response.read()).get("data", [])]
    except urllib.error.HTTPError as exc:
        hint = "check OPENAI_API_KEY" if exc.code in (401, 403) else "check the URL (it usually ends in /v1)"
        return Check(name, False, f"{base_url} answered HTTP {exc.code}; {hint}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, False, f"{base_url} is not reachable ({reason}); is the server running?")
    listed = ", ".join(models[:5]) + (" …" if len(models) > 5 else "")
    return Check(name, True, f"{base_url} answers; models: {listed or 'none listed'}")


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


def diagnose(base_url: str | None, key: str | None) -> list[Check]:
    return [api_key(key), endpoint(base_url, key), local_runtime(), demo_model()]


def usable_backends(checks: list[Check]) -> list[str]:
    """Backends `counterpoint run` can use, by the option that selects each."""
    by_name = {check.name: check.ok for check in checks}
    usable = []
    if by_name["OpenAI API key"]:
        usable.append("OpenAI (default)")
    if by_name["OpenAI-compatible endpoint"]:
        usable.append("--base-url")
    if by_name["local runtime (llama.cpp)"] and by_name["demo model (SmolLM2-135M)"]:
        usable.append("--local")
    elif by_name["local runtime (llama.cpp)"]:
        usable.append("--local --model-file PATH.gguf")
    return usable
