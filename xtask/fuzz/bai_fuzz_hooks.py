"""Schemathesis hooks of `cargo xtask fuzz`: every request signed as the official client signs it,
and every answer checked against the manager's error contract.

Loaded by `schemathesis run` through `SCHEMATHESIS_HOOKS=bai_fuzz_hooks` (this folder on
PYTHONPATH). Configured by environment variables that xtask/src/fuzz.rs sets:

- `BAI_FUZZ_ACCESS_KEY`, `BAI_FUZZ_SECRET_KEY`: the keypair every request is signed with.
- `BAI_FUZZ_API_VERSION`: the `X-BackendAI-Version` header (the 24.03 client's by default).

Signing (api-auth-client.md §3.2) happens in a `requests` auth hook, which runs on the prepared
request: the signed path and query are byte for byte the ones sent, whatever schemathesis put in
them. `PUT /manager/status` that froze the manager is followed by a signed request setting it to
`running` again, so the rest of the run is not answered 503 `server-frozen`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.graphql import nodes
from schemathesis.hooks import HookContext

API_VERSION = os.environ.get("BAI_FUZZ_API_VERSION", "v8.20240315")
PROBLEM_TYPE_PREFIX = "https://api.backend.ai/probs/"
EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()


def signed_content_type(header: str | None) -> str:
    """The media type as the manager signs it (auth/signature.rs `signed_content_type`)."""
    if header is None:
        return "application/octet-stream"
    media_type = header.split(";", 1)[0].strip()
    if not media_type or "/" not in media_type:
        return "text/plain"
    return media_type.lower()


class BackendAIAuth(requests.auth.AuthBase):
    """HMAC-SHA256 keypair signature over the prepared request (the final URL and headers)."""

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url)
        path = url.path or "/"
        if url.query:
            path = f"{path}?{url.query}"
        host = url.netloc
        now = datetime.now(timezone.utc)
        date = now.isoformat()
        # A GET without a body sends no Content-Type from requests; sign it as the client does.
        if "Content-Type" not in request.headers:
            request.headers["Content-Type"] = "application/json"
        content_type = signed_content_type(request.headers.get("Content-Type"))
        string_to_sign = "\n".join(
            [
                request.method.upper(),
                path,
                date,
                f"host:{host}",
                f"content-type:{content_type}",
                f"x-backendai-version:{API_VERSION}",
                EMPTY_BODY_HASH,
            ]
        )
        date_key = hmac.new(
            self.secret_key.encode(), now.strftime("%Y%m%d").encode(), hashlib.sha256
        ).digest()
        host_key = hmac.new(date_key, host.encode(), hashlib.sha256).digest()
        signature = hmac.new(host_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        request.headers["Date"] = date
        request.headers["Host"] = host
        request.headers["X-BackendAI-Version"] = API_VERSION
        request.headers["Authorization"] = (
            f"BackendAI signMethod=HMAC-SHA256, credential={self.access_key}:{signature}"
        )
        return request


AUTH = BackendAIAuth(os.environ["BAI_FUZZ_ACCESS_KEY"], os.environ["BAI_FUZZ_SECRET_KEY"])

# graphene's `JSONString`: a string holding JSON (any JSON, or text that is not JSON at all).
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
schemathesis.graphql.scalar(
    "JSONString", st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=40)).map(nodes.String)
)

# What the manager answers when it did not accept a request's signature
# (auth/mod.rs, auth/signature.rs): none of these may be seen, or the run fuzzed nothing.
SIGNATURE_REFUSALS = (
    "Signature mismatch",
    "Invalid signature",
    "Date/time sync error",
    "Malformed authorization header",
    "Missing or malformed authorization parameters",
    "API version missing in request headers",
    "Access key not found",
)


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict) -> None:
    kwargs["auth"] = AUTH


@schemathesis.hook
def after_call(context: HookContext, case: Case, response: Response) -> None:
    if case.method.upper() != "PUT" or case.path != "/manager/status":
        return
    if response.status_code >= 300:
        return
    base = urlsplit(response.request.url)
    unfreeze = requests.put(
        f"{base.scheme}://{base.netloc}/manager/status",
        data=json.dumps({"status": "running"}),
        headers={"Content-Type": "application/json"},
        auth=AUTH,
        timeout=30,
    )
    if unfreeze.status_code >= 300:
        raise RuntimeError(
            f"cannot set the manager status back to running: {unfreeze.status_code} {unfreeze.text}"
        )


@schemathesis.check
def problem_json_errors(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """An error answer is an RFC 7807 document whose `type` is one of the reference's."""
    status = response.status_code
    if status < 400:
        return None
    # The WebSocket and SSE routes' own answers are checked like any other.
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if signed_content_type(content_type) != "application/problem+json":
        raise AssertionError(
            f"{status} answered with Content-Type {content_type!r}, not application/problem+json: "
            f"{response.text[:300]!r}"
        )
    if case.method.upper() == "HEAD":
        # No body to read; the media type is all a HEAD answer can show.
        return None
    try:
        problem = json.loads(response.text)
    except ValueError as error:
        raise AssertionError(f"{status} problem document is not JSON ({error}): {response.text[:300]!r}")
    problem_type = problem.get("type") if isinstance(problem, dict) else None
    if not isinstance(problem_type, str) or not problem_type.startswith(PROBLEM_TYPE_PREFIX):
        raise AssertionError(f"{status} problem type {problem_type!r} is not {PROBLEM_TYPE_PREFIX}...")
    if not isinstance(problem.get("title"), str):
        raise AssertionError(f"{status} problem document has no title: {response.text[:300]!r}")
    if status == 401 and problem.get("msg") in SIGNATURE_REFUSALS:
        raise AssertionError(f"the harness's signature was refused: {response.text[:300]!r}")
    return None


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Any 5xx is a bug here: the stores are up for the whole run."""
    if response.status_code >= 500:
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]!r}")
    return None
