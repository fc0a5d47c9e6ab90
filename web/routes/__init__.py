"""Route modules beyond the core, one per seed section. Each has ``register(edge)``.

Add a module here with one line; the edge imports them in this order at start.
"""

ROUTE_MODULES: list[str] = [
    "web.routes.session",
    "web.routes.seti",
    "web.routes.seti_account",
    "web.routes.dsa_science",
    "web.routes.seti_live",
    "web.routes.dsa_ingest",
    "web.routes.dsa_qa",
    "web.routes.products",
    "web.routes.pages",
    "web.routes.dsa_control",
    "web.routes.events",
]
