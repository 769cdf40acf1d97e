"""Python's aiocometd-ng: handshakes over long-polling, then moves to a WebSocket.

Usage: python3 aiocometd-client.py URL STATE   (output as in cometd-client.mjs)
"""
import asyncio
import json
import sys

from aiocometd_ng import Client, ConnectionType


async def main(url: str, wanted: str) -> int:
    async with Client(url, connection_types=[ConnectionType.WEBSOCKET]) as client:
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
