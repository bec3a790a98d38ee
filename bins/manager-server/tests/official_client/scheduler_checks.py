"""Asks our server, through the official Backend.AI client SDK, what the CLI has no command for
about the scheduler and the containers, and prints what it got as one JSON object. The endpoint and
the keypair come from the BACKEND_* environment; argv[1] is a JSON object with the session and the
kernel to ask about.

1. GET /manager/scheduler/status (signed; a superadmin's call);
2. compute_container and compute_container_list through the SDK's GraphQL query;
3. an agent's compute_containers with the client's own field set (what `--format` would ask).
"""

import asyncio
import json
import sys

from ai.backend.client.exceptions import BackendAPIError
from ai.backend.client.output.fields import agent_fields
from ai.backend.client.request import Request
from ai.backend.client.session import AsyncSession


async def fetch_json(method, path):
    request = Request(method, path)
    try:
        async with request.fetch() as response:
            return {"status": response.status, "body": await response.json()}
    except BackendAPIError as error:
        return {"status": error.status, "body": error.data}


async def graphql(session, query, variables):
    try:
        return {"data": await session.Admin.query(query, variables)}
    except BackendAPIError as error:
        return {"error": str(error)}


async def main():
    asked = json.loads(sys.argv[1])
    results = {}
    async with AsyncSession() as session:
        results["scheduler_status"] = await fetch_json("GET", "/manager/scheduler/status")
        results["container"] = await graphql(
            session,
            "query($id: UUID!) { compute_container(id: $id) { id session_id cluster_role agent } }",
            {"id": asked["kernel"]},
        )
        results["container_list"] = await graphql(
            session,
            "query($sid: ID!) { compute_container_list(limit: 10, offset: 0, session_id: $sid)"
            " { items { id cluster_role } total_count } }",
            {"sid": asked["session"]},
        )
        if "agent" in asked:
            try:
                results["agent"] = await session.Agent.detail(
                    asked["agent"],
                    fields=[agent_fields["id"], agent_fields["compute_containers"]],
                )
            except BackendAPIError as error:
                results["agent"] = {"error": str(error)}
    print(json.dumps(results))


asyncio.run(main())
