"""Calls our server through the official Backend.AI client SDK (not the CLI) and prints what it got
as one JSON object. The endpoint and the superadmin keypair come from the BACKEND_* environment.

1. authenticated REST calls the CLI has no command for (presets, check-presets, scaling groups);
2. a login: POST /auth/authorize with a fixture user's email and password, anonymous;
3. signed requests with the keypair the login returned, including a password change.
"""

import asyncio
import json
import os
import sys

from ai.backend.client.config import APIConfig
from ai.backend.client.exceptions import BackendAPIError
from ai.backend.client.request import Request
from ai.backend.client.session import AsyncSession


async def fetch_json(method, path, body=None, params=None):
    request = Request(method, path, params=params)
    if body is not None:
        request.set_json(body)
    try:
        async with request.fetch() as response:
            return {"status": response.status, "body": await response.json()}
    except BackendAPIError as error:
        return {"status": error.status, "body": error.data}


async def main():
    endpoint = os.environ["BACKEND_ENDPOINT"]
    login = json.loads(sys.argv[1])
    results = {}

    async with AsyncSession() as session:
        results["presets"] = await session.Resource.list()
        results["check_presets"] = await session.Resource.check_presets()
        results["scaling_groups"] = await fetch_json(
            "GET", "/scaling-groups", params={"group": "default"}
        )

    anonymous = APIConfig(endpoint=endpoint, access_key="", secret_key="")
    async with AsyncSession(config=anonymous):
        results["authorize"] = await fetch_json(
            "POST",
            "/auth/authorize",
            {
                "type": "keypair",
                "domain": "default",
                "username": login["username"],
                "password": login["password"],
            },
        )
        results["bad_password"] = await fetch_json(
            "POST",
            "/auth/authorize",
            {
                "type": "keypair",
                "domain": "default",
                "username": login["username"],
                "password": login["password"] + "-wrong",
            },
        )

    keys = results["authorize"]["body"]["data"]
    as_user = APIConfig(
        endpoint=endpoint, access_key=keys["access_key"], secret_key=keys["secret_key"]
    )
    async with AsyncSession(config=as_user) as session:
        results["as_user_test"] = await fetch_json(
            "GET", "/auth/test", params={"echo": "hi there+you/가"}
        )
        results["as_user_role"] = await fetch_json("GET", "/auth/role")
        await session.Auth.update_password(login["password"], "N3w-passw0rd", "N3w-passw0rd")
        results["password_updated"] = True

    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
