"""Running the emulator over real HTTP with uvicorn (``qrvey-iac emulator serve``)."""

from __future__ import annotations

import logging

import uvicorn

from qrvey_iac.emulator.app import create_app
from qrvey_iac.emulator.config import EmulatorConfig

_DROP_LOG_MESSAGE = "ASGI callable returned without completing response."


class _DroppedConnectionFilter(logging.Filter):
    """Keeps uvicorn quiet about connections the emulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_LOG_MESSAGE


def quiet_dropped_connections() -> None:
    """Install the filter once on uvicorn's error logger."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DroppedConnectionFilter) for existing in logger.filters):
        logger.addFilter(_DroppedConnectionFilter())


def make_server(config: EmulatorConfig, host: str, port: int, **uvicorn_options: object) -> uvicorn.Server:
    """A uvicorn server for a fresh emulator app (its Emulator is ``server.config.app.state.emulator``)."""
    quiet_dropped_connections()
    app = create_app(config)
    options = {"log_level": "warning", "timeout_graceful_shutdown": 2, **uvicorn_options}
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve until SIGINT or SIGTERM. With config.data_file set, the world is saved while
    serving (see Emulator.keep_saved) and on shutdown; after a SIGKILL the file lacks at
    most the changes of the last save_interval seconds."""
    server = make_server(config, host, port)
    try:
        server.run()
    finally:   # a second Ctrl-C skips the app's own shutdown save
        emulator = server.config.app.state.emulator
        if emulator.unsaved():
            emulator.save()
