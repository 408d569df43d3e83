"""The baseline: a bare Starlette endpoint that only parses the same JSON."""

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def parse_only(request: Request) -> JSONResponse:
    payload = json.loads(await request.body())
    return JSONResponse({"status": "parsed", "alerts": len(payload["alerts"])})


app = Starlette(routes=[Route("/webhooks/alertmanager", parse_only, methods=["POST"])])
