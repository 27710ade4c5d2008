"""refrain-studio: serve the studio with uvicorn at the configured host and port."""

from __future__ import annotations

import uvicorn

from infra.settings import get_settings
from web.main import create_app


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
