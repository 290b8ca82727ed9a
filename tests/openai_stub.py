"""A stub OpenAI-compatible server on 127.0.0.1 (no real API): answers /v1/chat/completions from a function.

with openai_stub(lambda request: {"role": "assistant", "content": "hi"}) as stub:
    model = load_chat_model("openai:stub", base_url=stub.base_url)
    ...
    stub.requests  # the JSON bodies received
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Stub:
    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def openai_stub(reply: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[Stub]:
    """Serve chat completions whose message is `reply(request_body)` (an OpenAI assistant message dict)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            message = reply(body)
            payload = {
                "id": f"chatcmpl-{len(received)}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "stub"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Stub(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", requests=received)
    finally:
        server.shutdown()
        server.server_close()
