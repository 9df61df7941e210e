"""The HTTP protocol `dendrite api` and `dendrite serve` run: uvicorn's httptools protocol with a
cap on the size of a request's line and headers.

httptools buffers any amount of header data (a 100 MB header was read whole) and uvicorn sets no
limit of its own on it. Past DENDRITE_MAX_HEADER_BYTES the client gets a 431 in the error
envelope and the connection is closed.
"""

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import get_settings

PROTOCOL = "service.api.http:HttpProtocol"  # for uvicorn.run(http=...) and `uvicorn --http`


class HeadersTooLarge(Exception):
    pass


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_limit = get_settings().max_header_bytes
        self.header_bytes = 0  # of the request line and headers parsed so far
        self.unparsed_bytes = 0  # read while the headers are incomplete
        self.reading_headers = True
        self.refused = False

    def data_received(self, data: bytes) -> None:
        if self.reading_headers:
            self.unparsed_bytes += len(data)
        super().data_received(data)
        # httptools hands over a header only once it is complete: a header that never ends is
        # caught by the bytes read while the headers are still incomplete after this read.
        if self.reading_headers and self.unparsed_bytes > self.header_limit:
            self.refused = True
            self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_headers, self.unparsed_bytes = True, 0  # a pipelined request may follow

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.header_limit:
            self.refused = True
            raise HeadersTooLarge  # httptools stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self.refused:
            super().send_400_response(msg)
            return
        if self.transport.is_closing():
            return
        body = json.dumps(
            {
                "error": "request_header_fields_too_large",
                "detail": f"the request line and headers are larger than {self.header_limit} "
                "bytes (setting DENDRITE_MAX_HEADER_BYTES); send fewer or shorter headers",
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
