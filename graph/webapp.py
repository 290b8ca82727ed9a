"""Images in and out of the LangGraph server: the Starlette app that `langgraph.json` mounts (`http.app`).

    GET  /images/{id}   the stored PNG of an image (404 for anything that is not a stored image's id)
    POST /images        the request body is an image file (PNG, JPEG, WebP, ...): stored, its `ImageRef`
                        returned (201) with `url`; not an image or too large is a 400 / 413 with one line

A remote client sends an image by uploading it here (or inline, as a data URL in its message) and fetches a
result by the id in the run's output. The store is the graphs' default one, `$PIXPLAN_STORE` (else
`~/.cache/pixplan/store`), the same folder `Context.store_dir` defaults to; the served graphs refuse a run
whose context names another (`default_store_only`). LangGraph applies no authentication to custom routes
unless `http.enable_custom_route_auth` is set: behind a public address, put auth in front of it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pixplan.tools.store import ImageError, ImageStore, default_store_dir

#: The largest upload accepted (the store itself takes files up to 256 MiB from disk; HTTP gets less).
MAX_UPLOAD_BYTES = 32 * 2**20


def server_store() -> ImageStore:
    """The store the graphs use by default, resolved per request so a changed $PIXPLAN_STORE is seen."""
    return ImageStore(default_store_dir())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# Store access is file I/O: the GET handler is sync (Starlette runs it in a thread pool) and the upload's
# decoding runs in one too; the event loop never blocks (`langgraph dev` raises if it would).
def get_image(request: Request) -> Response:
    image_id = request.path_params["image_id"]
    store = server_store()
    # `in` validates the id's form before any path is built: `../x` or `%2e%2e` never reach the file system.
    if image_id not in store:
        return _error(404, f"no image {image_id[:80]!r} in the store")
    return FileResponse(
        store.path(image_id), media_type="image/png", headers={"Cache-Control": "max-age=86400"}
    )


async def post_image(request: Request) -> Response:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        return _error(413, f"the image is too large ({declared} bytes; limit {MAX_UPLOAD_BYTES} bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            return _error(413, f"the image is too large (over the limit of {MAX_UPLOAD_BYTES} bytes)")
    if not body:
        return _error(400, "the request body is empty; send the image file's bytes as the body")
    try:
        ref = await run_in_threadpool(lambda: server_store().put_file(bytes(body)))
    except ImageError as error:
        return _error(400, str(error).replace("<bytes>: ", "", 1))
    return JSONResponse({**ref, "url": f"/images/{ref['id']}"}, status_code=201)


app = Starlette(
    routes=[
        Route("/images/{image_id}", get_image, methods=["GET"]),
        Route("/images", post_image, methods=["POST"]),
    ]
)
