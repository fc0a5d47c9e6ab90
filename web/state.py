"""What a request handler may reach of the running edge, by application key.

``web.auth`` and the route modules need the projection store and the settings of the edge that
serves them. Reaching them through ``web.app.EDGE`` meant importing ``web.app`` inside functions
(``web.app`` imports the routes, which import ``web.auth``): an import circle hidden at run time.
These keys live here, in a module that imports no other part of ``web/`` besides the store, so
``app``, ``auth`` and the routes all depend on it and never on each other's modules.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from settings import Settings
from web.projections.store import ProjectionStore
from web.sessions import SessionStore

STORE: web.AppKey[ProjectionStore] = web.AppKey("projection_store", ProjectionStore)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
SESSIONS: web.AppKey[SessionStore] = web.AppKey("sessions", SessionStore)
#: set once the edge's projection has caught up with the stream (``web.auth`` answers 503 before)
CAUGHT_UP: web.AppKey[asyncio.Event] = web.AppKey("caught_up", asyncio.Event)
