"""Feishu's long connection (websocket mode), on the bot's own event loop.

lark-oapi's ``ws.Client`` speaks the protocol (protobuf frames, acknowledgements, pings, reconnection
settings); ``LongConnection`` keeps that and replaces what does not fit a bot that runs other channels
on the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

import lark_oapi as lark
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

ENDPOINT_TIMEOUT = 30.0


class _WithoutTicket(logging.Filter):
    """websockets logs the handshake's request line at DEBUG, and its query holds the connection's ticket."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.partition("?")[0] if isinstance(a, str) else a for a in record.args)
        return True


_SOCKET_LOG = logging.getLogger("websockets.client.feishu")
_SOCKET_LOG.addFilter(_WithoutTicket())


class LongConnection(lark.ws.Client):  # type: ignore[misc]  # untyped base class
    """lark-oapi's long connection, run on the bot's event loop.

    The SDK's ``start`` never returns, running the event loop that was current when lark_oapi was imported;
    it asks for the endpoint with blocking ``requests``, leaves its tasks unowned, and drops frames of type
    CARD (larksuite/oapi-sdk-python#126). This keeps its frames, acknowledgements, pings and reconnection
    settings, and replaces those parts.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owned: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _own(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._owned.add(task)
        task.add_done_callback(self._owned.discard)

    async def open(self) -> None:
        """Connect; refused credentials raise, anything else is tried again in the background."""
        try:
            await self._connect()
        except lark.ws.client.ClientException:
            raise
        except Exception as exc:
            log.warning("feishu: could not open the long connection (%s); trying again", type(exc).__name__)
            self._own(self._reconnect())
        self._own(self._ping_loop())

    async def close(self) -> None:
        self._closing = True
        for task in list(self._owned):
            task.cancel()
        await asyncio.gather(*self._owned, return_exceptions=True)
        await self._disconnect()

    async def _connect(self) -> None:
        endpoint = asyncio.to_thread(lark.ws.Client._get_conn_url, self)
        url = await asyncio.wait_for(endpoint, ENDPOINT_TIMEOUT)
        query = parse_qs(urlsplit(url).query)
        self._conn = await connect(url, proxy=None, logger=_SOCKET_LOG)
        self._conn_url = url.partition("?")[0]  # the SDK logs it; the query holds the connection's ticket
        self._conn_id, self._service_id = query["device_id"][0], query["service_id"][0]
        self._own(self._receive_message_loop())

    async def _receive_message_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self._conn:
                self._own(self._handle_message(frame))
        if not self._closing:
            log.warning("feishu: the long connection dropped; reconnecting")
            await self._disconnect()
            await self._reconnect()

    async def _handle_data_frame(self, frame: Any) -> None:
        for header in frame.headers:  # a card callback in a CARD frame is dispatched as the events are
            if header.key == "type" and header.value == "card":
                header.value = "event"
        await super()._handle_data_frame(frame)
