"""Python's aiocometd-ng: handshakes over long-polling, then moves to a WebSocket.

Usage: SW_USER=... SW_PASSWORD=... python3 aiocometd-client.py URL STATE
(output as in cometd-client.mjs). Credentials go as Basic on every request and on the
WebSocket upgrade, through an extension: aiocometd's way of adding HTTP headers.
"""
import asyncio
import base64
import json
import os
import sys

from aiocometd_ng import Client, ConnectionType, Extension


class BasicAuth(Extension):
    """Adds `Authorization: Basic` to every request the transports send."""

    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.header = f"Basic {token}"

    async def outgoing(self, payload, headers) -> None:
        headers["Authorization"] = self.header

    async def incoming(self, payload, headers=None) -> None:
        pass


async def main(url: str, wanted: str) -> int:
    auth = BasicAuth(os.environ["SW_USER"], os.environ["SW_PASSWORD"])
    async with Client(url, connection_types=[ConnectionType.WEBSOCKET],
                      extensions=[auth]) as client:
        await client.subscribe("/notifications/services")
        print(f"SUBSCRIBED {client.connection_type.value}", flush=True)
        async for message in client:
            data = message["data"]
            if data.get("messageType") != "ServiceStateChangeMessage":
                print(f"FAILED messageType {data.get('messageType')}", flush=True)
                return 1
            print(f"STATE {json.dumps(data['service'])}", flush=True)
            if data["service"]["state"] == wanted:
                return 0
    return 1


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 30)))
    except Exception as error:  # noqa: BLE001 - any failure is the test's answer
        print(f"FAILED {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
