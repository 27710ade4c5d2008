"""refrain-studio: serve the studio with uvicorn at the configured host and port."""

from __future__ import annotations

import gc
import sys

import uvicorn

from infra.settings import get_settings
from web.main import create_app


def main() -> None:
    settings = get_settings()
    # Sync endpoints run on worker threads beside the event loop; a shorter GIL switch interval
    # (default 5 ms) keeps a busy thread from holding up the loop's many short requests.
    sys.setswitchinterval(settings.gil_switch_interval_s)
    app = create_app(settings)
    # Everything loaded so far (FastAPI, SQLAlchemy, numpy, the engines' modules) lives as long as the
    # process: keep it out of the cyclic collector's full passes, which otherwise stall every request
    # in flight for as long as it takes to walk that heap.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
    )


if __name__ == "__main__":
    main()
