"""A stand-in for an OpenAI-compatible endpoint: `/v1/chat/completions` answering canned replies.

    python -m mlops_assets_tests.ask.llm_stand_in --port 8123 --replies replies.json

``replies.json`` maps a part of the question (any case) to the reply's text; a reply "SLEEP <seconds>" answers that much
later. A request whose system message lacks the table catalog is answered 400: the model must be given it.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler(replies: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._send(200 if self.path == "/ping" else 404, {"ok": self.path == "/ping"})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            messages = body.get("messages", [])
            system = " ".join(m["content"] for m in messages if m["role"] == "system")
            if "TABLE serving.sales_overall" not in system:
                return self._send(400, {"error": {"message": "the system message lacks the table catalog"}})
            question = messages[-1]["content"]
            reply = next((text for key, text in replies.items() if key.lower() in question.lower()), "I do not know.")
            if reply.startswith("SLEEP "):
                time.sleep(float(reply.split()[1]))
                reply = "select 1"
            return self._send(200, {
                "id": "stand-in", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replies", required=True)
    args = parser.parse_args()
    with open(args.replies) as file:
        replies = json.load(file)
    ThreadingHTTPServer(("127.0.0.1", args.port), handler(replies)).serve_forever()


if __name__ == "__main__":
    main()
