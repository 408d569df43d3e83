"""`firebreak serve`: uvicorn around the app, with a clean shutdown on SIGTERM/SIGINT.

uvicorn stops accepting connections, lets in-flight requests finish (up to
`server.shutdown_timeout_s`), then runs the lifespan shutdown, which drains the ingest
writer before the store closes: an acknowledged alert is always committed.

`kill -USR1 <pid>` prints every thread's stack to stderr (faulthandler): the first thing to
look at when a process seems stuck.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

import uvicorn

from firebreak.app import create_app
from firebreak.components import Parts
from firebreak.config import Config, Secrets
from firebreak.logs import configure_logging
from firebreak.tools.redact import Redactor, redact_processor


def serve(config: Config, secrets: Secrets) -> int:
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    redactor = Redactor.from_config(config.investigation, secrets.values())
    configure_logging(scrub=redact_processor(redactor))
    app = create_app(config, secrets, Parts(redactor=redactor))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(config.server.shutdown_timeout_s),
        )
    )
    server.run()
    return 0
