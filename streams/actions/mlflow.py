"""Move an MLflow model-registry alias, over MLflow's REST API (``/api/2.0/mlflow``).

httpx only: the ``mlflow`` package (and its dependencies) is not needed to call a
tracking server.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["MLflowError", "current_alias", "set_alias"]

API = "/api/2.0/mlflow"


class MLflowError(RuntimeError):
    """The tracking server refused or could not be reached; the message says what."""


def _call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, tried again once after a transport error: a pooled connection the
    server closed while idle fails on reuse, and every call here is idempotent."""
    for attempt in (1, 2):
        try:
            return client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if attempt == 2:
                raise MLflowError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise MLflowError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    raise AssertionError("unreachable")


def _refused(response: httpx.Response) -> MLflowError:
    try:
        body = response.json()
        detail = f"{body.get('error_code', '')}: {body.get('message', '')}"
    except ValueError:
        detail = response.text[:300]
    return MLflowError(f"{response.request.method} {response.request.url.path} answered "
                       f"HTTP {response.status_code} {detail}")  # fmt: skip


def current_alias(client: httpx.Client, uri: str, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points at now, ``None`` when the alias is not set."""
    url = f"{uri}{API}/registered-models/alias"
    response = _call(client, "GET", url, params={"name": name, "alias": alias})
    # MLflow answers an unset alias with 400 INVALID_PARAMETER_VALUE "... not found".
    if response.status_code == 404 or (
        response.status_code == 400 and "not found" in response.text.lower()
    ):
        return None
    if response.status_code != 200:
        raise _refused(response)
    return str(response.json()["model_version"]["version"])


def set_alias(
    client: httpx.Client, uri: str, name: str, alias: str, version: str, *, dry_run: bool
) -> str:
    """Point ``name@alias`` at ``version``; what was (or would be) done, in words.

    The version must exist; an alias already there is left alone.
    """
    check = _call(client, "GET", f"{uri}{API}/model-versions/get",
                  params={"name": name, "version": version})  # fmt: skip
    if check.status_code != 200:
        raise _refused(check)
    before = current_alias(client, uri, name, alias)
    if before == version:
        return f"{name}@{alias} already points at version {version}"
    move = (
        f"{name}@{alias} from version {before} to {version}"
        if before
        else (f"{name}@{alias} to version {version}")
    )
    if dry_run:
        return f"dry run: would set {move} (set dry_run = false to act)"
    response = _call(client, "POST", f"{uri}{API}/registered-models/alias",
                     json={"name": name, "alias": alias, "version": version})  # fmt: skip
    if response.status_code != 200:
        raise _refused(response)
    return f"set {move}"
