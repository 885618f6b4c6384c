"""One agent session through the official Python MCP SDK (2.x), driven by tests/sdk_python.rs.

Usage: AIRLOCK_SDK_KEY=<api key> .tools/venv/bin/python client_flow.py <mcp url>

The 2.x client's default mode probes `server/discover` and speaks the stateless
2026-07-28 revision when the server offers it (else it falls back to `initialize`).
Same steps and output as client_flow.mjs: one JSON object on stdout with
{"ok": true, "result": ...} or {"ok": false, "error": {...}} per step. Exits 0 when every
step ran, 2 on bad usage, 3 when the flow overran its deadline.
"""

import asyncio
import json
import os
import sys
from typing import Any, Awaitable, Callable

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

REQUEST_TIMEOUT_S = 10.0
FLOW_DEADLINE_S = 30.0
COUNT_SQL = "SELECT COUNT(*) AS n FROM customers"


def describe_error(err: BaseException) -> dict[str, Any]:
    # anyio task groups wrap the real failure; report the innermost one.
    while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        err = err.exceptions[0]
    is_mcp = isinstance(err, MCPError)
    return {
        "name": type(err).__name__,
        "isMcpError": is_mcp,
        "code": err.code if is_mcp else None,
        "message": str(err.error.message if is_mcp else err),
        "data": err.error.data if is_mcp else None,
    }


async def step(report: dict[str, Any], name: str, run: Callable[[], Awaitable[Any]]) -> bool:
    try:
        report[name] = {"ok": True, "result": await run()}
    except Exception as err:  # every failure is an outcome the Rust test judges
        report[name] = {"ok": False, "error": describe_error(err)}
    return report[name]["ok"]


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def flow(url: str, key: str, report: dict[str, Any]) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    client = Client(streamable_http_client(url, http_client=http), read_timeout_seconds=REQUEST_TIMEOUT_S)

    async def call(tool: str, args: dict[str, Any]) -> Any:
        return dump(await client.call_tool(tool, args))

    async with http:
        try:
            await client.__aenter__()
        except Exception as err:
            report["connect"] = {"ok": False, "error": describe_error(err)}
            return
        try:
            info = client.server_info
            report["connect"] = {
                "ok": True,
                "result": {
                    "serverVersion": dump(info) if info is not None else None,
                    "protocolVersion": client.protocol_version,
                },
            }
            await step(report, "list_tools", lambda: _tool_names(client))
            await step(report, "query_before", lambda: call("query", {"sql": COUNT_SQL}))
            await step(
                report,
                "query_rows",
                lambda: call("query", {"sql": "SELECT id, name, city FROM customers ORDER BY id LIMIT 3"}),
            )
            await step(report, "drop", lambda: call("execute", {"sql": "DROP TABLE customers"}))
            await step(report, "query_after", lambda: call("query", {"sql": COUNT_SQL}))
        finally:
            await step(report, "close", lambda: _close(client))


async def _tool_names(client: Client) -> list[str]:
    return [tool.name for tool in (await client.list_tools()).tools]


async def _close(client: Client) -> bool:
    await client.__aexit__(None, None, None)
    return True


async def main() -> int:
    if len(sys.argv) != 2 or not os.environ.get("AIRLOCK_SDK_KEY"):
        print("usage: AIRLOCK_SDK_KEY=<api key> python client_flow.py <mcp url>", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    try:
        await asyncio.wait_for(flow(sys.argv[1], os.environ["AIRLOCK_SDK_KEY"], report), FLOW_DEADLINE_S)
    except TimeoutError:
        report["deadline"] = f"the flow did not finish within {FLOW_DEADLINE_S} s"
        print(json.dumps(report))
        return 3
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
