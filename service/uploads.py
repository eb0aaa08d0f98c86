"""Receiving an upload: the multipart body streamed straight into a file in the data directory.

FastAPI's ``UploadFile`` would first spool the whole file to a temporary file of its own (and hold up to
1 MB of it in memory), and its size is known only at the end. Here the body is parsed as it arrives: the
file's bytes go to ``dest`` in chunks, its size is checked as it grows (413 as soon as it passes the
limit, and before reading anything when ``Content-Length`` already says so), and the small form fields
are kept in memory, bounded in size and number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from roadnet.errors import InputError, TooLargeError
from roadnet.jobs import storage_errors

FILE_FIELD = "file"
#: Bytes of multipart framing (boundaries, part headers, small fields) allowed on top of the file itself.
FRAMING_BYTES = 64 * 1024
MAX_FIELDS = 20
MAX_FIELD_BYTES = 1024
#: File bytes gathered before one write in a worker thread (fewer, larger writes off the event loop).
WRITE_CHUNK = 1024 * 1024
#: The longest file name kept for display.
MAX_FILENAME = 200


@dataclass
class Upload:
    """A received upload: the file at ``path``, its original name (display only), and the form fields."""

    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def _bad_request(detail: str) -> InputError:
    return InputError(f"{detail}; send the scene as multipart/form-data with the file in the field "
                      f"'{FILE_FIELD}', e.g. curl -F {FILE_FIELD}=@scene.tif")  # fmt: skip


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(
        f"the upload is larger than the limit of {limit:,} bytes (ROADNET_MAX_UPLOAD_BYTES); "
        "split the scene into smaller ones"
    )


class _Receiver:
    """The multipart parser's callbacks: file bytes to a buffer flushed to ``dest``, fields to a dict."""

    CALLBACKS = (
        "on_part_begin",
        "on_header_field",
        "on_header_value",
        "on_header_end",
        "on_headers_finished",
        "on_part_data",
        "on_part_end",
    )

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.part_name = ""
        self.part_is_file = False
        self.part_data = bytearray()
        self.pending = bytearray()  # file bytes not yet written
        self.size = 0
        self.filename: str | None = None
        self.file_complete = False
        self.fields: dict[str, str] = {}

    def on_part_begin(self) -> None:
        self.disposition, self.part_data = b"", bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        name = options.get(b"name")
        if name is None:
            raise _bad_request("a multipart part has no name")
        self.part_name = name.decode("utf-8", "replace")
        self.part_is_file = self.part_name == FILE_FIELD
        if self.part_is_file:
            if self.filename is not None:
                raise _bad_request(f"more than one file in the field '{FILE_FIELD}'")
            raw = options.get(b"filename", b"upload")
            self.filename = (
                raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1][:MAX_FILENAME]
            )
        elif len(self.fields) >= MAX_FIELDS:
            raise _bad_request(f"more than {MAX_FIELDS} form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part_is_file:
            self.size += end - start
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.pending += data[start:end]
        else:
            self.part_data += data[start:end]
            if len(self.part_data) > MAX_FIELD_BYTES:
                raise _bad_request(
                    f"the form field '{self.part_name}' is longer than {MAX_FIELD_BYTES} bytes"
                )

    def on_part_end(self) -> None:
        if self.part_is_file:
            self.file_complete = True
        else:
            self.fields[self.part_name] = self.part_data.decode("utf-8", "replace")

    def take_pending(self, at_least: int) -> bytes | None:
        """The file bytes gathered so far when there are ``at_least`` of them, emptying the buffer."""
        if not self.pending or len(self.pending) < at_least:
            return None
        data, self.pending = bytes(self.pending), bytearray()
        return data


async def receive_upload(request: Request, dest: Path, *, max_bytes: int) -> Upload:
    """Stream ``request``'s multipart body: the field ``file`` into ``dest``, the other fields to a dict.

    Raises :class:`InputError` for a body that is not multipart or has no file, and
    :class:`TooLargeError` as soon as the file passes ``max_bytes``, and the storage errors of
    :func:`roadnet.jobs.storage_errors`; ``dest`` is removed then.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _bad_request(
            f"the request body is {content_type.decode() or 'missing'}, not multipart/form-data"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + FRAMING_BYTES:
        raise _too_large(max_bytes)

    with storage_errors():  # around the removal too, which fails alike on a read-only disk
        try:
            with dest.open("wb") as out:
                receiver = _Receiver(max_bytes)
                callbacks = {name: getattr(receiver, name) for name in receiver.CALLBACKS}
                parser = python_multipart.MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
                async for chunk in request.stream():
                    parser.write(chunk)
                    if (data := receiver.take_pending(WRITE_CHUNK)) is not None:
                        await run_in_threadpool(out.write, data)
                parser.finalize()
                if (data := receiver.take_pending(1)) is not None:
                    await run_in_threadpool(out.write, data)
        except FormParserError as exc:
            dest.unlink(missing_ok=True)
            raise _bad_request(f"the multipart body is malformed ({exc})") from exc
        except BaseException:  # too large, client gone, cancelled: nothing of the upload is kept
            dest.unlink(missing_ok=True)
            raise
    if receiver.filename is None or not receiver.file_complete:
        dest.unlink(missing_ok=True)
        problem = "has no file in the field" if receiver.filename is None else "ended inside the file of"
        raise _bad_request(f"the request {problem} '{FILE_FIELD}'")
    return Upload(path=dest, filename=receiver.filename, size=receiver.size, fields=receiver.fields)
