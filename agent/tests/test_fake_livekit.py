"""The stand-in LiveKit of the end-to-end tests speaks Twirp as the official client expects."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import VALID_METADATA
from fake_livekit import API_KEY, API_SECRET, FakeLiveKit
from livekit import api

from duecall_agent.metadata import parse_metadata


def test_official_python_client_creates_room_and_dispatch() -> None:
    md = json.dumps(VALID_METADATA)

    async def main(url: str) -> tuple[api.Room, api.AgentDispatch]:
        async with api.LiveKitAPI(url, API_KEY, API_SECRET) as lk:
            room = await lk.room.create_room(api.CreateRoomRequest(name="reminder-x-1", metadata=md))
            dispatch = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name="payment-reminder", room="reminder-x-1", metadata=md)
            )
            return room, dispatch

    with FakeLiveKit() as lk:
        room, dispatch = asyncio.run(main(lk.url))
        assert room.name == "reminder-x-1" and room.metadata == md and room.sid
        assert dispatch.agent_name == "payment-reminder" and dispatch.room == "reminder-x-1"
        [d] = lk.dispatches()
        assert parse_metadata(d.metadata).reminder_id == VALID_METADATA["reminder_id"]
        assert [c.method for c in lk.calls] == ["CreateRoom", "CreateDispatch"]


def test_wrong_secret_is_refused() -> None:
    async def main(url: str) -> None:
        async with api.LiveKitAPI(url, API_KEY, "not-the-secret-" + "x" * 32) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="r"))

    with FakeLiveKit() as lk:
        with pytest.raises(api.TwirpError) as err:
            asyncio.run(main(lk.url))
        assert err.value.status == 401
        assert lk.calls == []


def test_injected_failure() -> None:
    async def main(url: str) -> None:
        async with api.LiveKitAPI(url, API_KEY, API_SECRET) as lk:
            await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room="r"))

    with FakeLiveKit(fail_once={("livekit.AgentDispatchService", "CreateDispatch"): "not_found"}) as lk:
        with pytest.raises(api.TwirpError) as err:
            asyncio.run(main(lk.url))
        assert err.value.code == "not_found"
