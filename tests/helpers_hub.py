"""A small stand-in for the Hugging Face hub's HTTP API, serving one local folder as a model repo.

It answers the requests huggingface_hub's real client makes for ``model_info``, ``repo_info``,
``list_repo_tree`` and ``hf_hub_download`` (plain HTTP files, no LFS or Xet), which is enough
for ``snapshot_download`` to fetch a repo into the cache as it would from huggingface.co. Every
request path is recorded, so a test can tell which files were fetched.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0" * 39 + "1"


def _blob_id(data: bytes) -> str:
    """git's blob id, as the hub reports it for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        self.requests: list[str] = []
        self.url = ""

    def info(self) -> dict[str, object]:
        return {
            "id": self.repo_id,
            "modelId": self.repo_id,
            "sha": COMMIT,
            "private": False,
            "siblings": [{"rfilename": name} for name in self.files],
        }

    def tree(self) -> list[dict[str, object]]:
        return [
            {"type": "file", "path": name, "size": len(data), "oid": _blob_id(data)}
            for name, data in self.files.items()
        ]

    def downloaded(self) -> list[str]:
        """The files whose contents were sent (GET of a resolve URL), in order."""
        prefix = f"GET /{self.repo_id}/resolve/"
        return [
            r[len(prefix) :].partition("/")[2] for r in self.requests if r.startswith(prefix)
        ]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, value: object, head: bool) -> None:
            self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"}, head)

        def _answer(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            api = f"/api/models/{hub.repo_id}"
            resolve = f"/{hub.repo_id}/resolve/"
            if path in (api, f"{api}/revision/main", f"{api}/revision/{COMMIT}"):
                return self._json(hub.info(), head)
            if path.startswith(f"{api}/tree/"):
                return self._json(hub.tree(), head)
            if path.startswith(resolve):
                revision, _, name = path[len(resolve) :].partition("/")
                if revision in ("main", COMMIT) and name in hub.files:
                    data = hub.files[name]
                    headers = {
                        "X-Repo-Commit": COMMIT,
                        "ETag": f'"{_blob_id(data)}"',
                        "Content-Type": "application/octet-stream",
                    }
                    return self._send(200, data, headers, head)
            error = {"X-Error-Code": "EntryNotFound", "Content-Type": "application/json"}
            return self._send(404, b'{"error": "not found"}', error, head)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer(head=False)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
            self._answer(head=True)

    return Handler


@contextmanager
def serve_hub(repo_id: str, folder: Path) -> Iterator[FakeHub]:
    """Serve ``folder`` as the hub repo ``repo_id`` on localhost for the ``with`` block."""
    hub = FakeHub(repo_id, folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)
