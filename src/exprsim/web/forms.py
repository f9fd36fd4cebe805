"""What the web app takes from a request's query and form, checked before any route sees it.

* Form text is UTF-8 (as browsers send it, and the WHATWG form encoding says): Starlette
  decodes an ``application/x-www-form-urlencoded`` body's raw bytes as Latin-1 (``name=café``
  sent as is became ``cafÃ©``) and a bad ``%``-escape as U+FFFD, and falls back to Latin-1
  for a multipart text field that is not UTF-8. Here a urlencoded body is decoded as UTF-8
  and handed on ``%``-escaped (ASCII: decoded alike either way), and text that is not
  UTF-8, raw or escaped, is refused (422).
* A query parameter or a form field given twice, or two files, is refused (422) instead
  of the last one winning unnoticed.
"""

from __future__ import annotations

import codecs
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from exprsim.web.asgi import HttpMiddleware

#: the form field a photo or video goes in
FILE_FIELD = "file"
#: largest urlencoded form body (a token, a tag name: a few bytes); such a body is read
#: whole before the app sees it, so a large one would hold the server (a login needs no
#: token)
FORM_MAX_BYTES = 64 << 10
#: the refusal of a form over :data:`FORM_MAX_BYTES`
FORM_TOO_LARGE = f"form too large (at most {FORM_MAX_BYTES // 1024} KB)"


class FormError(Exception):
    """A query or form the app refuses (422): ``str(exc)`` says why, in one line."""


def repeated(names: Iterable[str]) -> str:
    """The first name that comes twice in ``names``, else ``""``."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return ""


def twice_error(name: str) -> FormError:
    """The error for the field or parameter ``name`` given twice."""
    if name == FILE_FIELD:
        return FormError("one file per request")
    return FormError(f"`{name[:64]}` given twice")


def urlencoded_pairs(body: bytes) -> list[tuple[str, str]]:
    """The fields of a urlencoded form body, decoded as UTF-8 (raw bytes and ``%``-escapes
    alike).

    Raises:
        FormError: text that is not UTF-8, or a field given twice.
    """
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict"
        )
    except UnicodeDecodeError as exc:
        raise FormError("form text must be UTF-8") from exc
    twice = repeated(name for name, _ in pairs)
    if twice:
        raise twice_error(twice)
    return pairs


class MultipartCheck:
    """Follows a ``multipart/form-data`` body as it streams by (:meth:`feed`): its text
    fields must decode in the form's charset (UTF-8 unless it says another), no field may
    come twice, and one part at most may be a file (whatever its name); :attr:`error` is the first fault found, else ``""``. A body
    that is not valid multipart is left to the app's parser to refuse."""

    def __init__(self, boundary: bytes, charset: str) -> None:
        from python_multipart.multipart import MultipartParser

        self.error = ""
        self.charset = charset
        self._names: set[bytes] = set()
        self._files = 0
        self._header = b""
        self._value = b""
        self._disposition = b""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._name = ""
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser: Any = MultipartParser(boundary, callbacks)

    def feed(self, chunk: bytes) -> None:
        if self._parser is None or self.error:
            return
        try:
            self._parser.write(chunk)
        except Exception:  # malformed: the app's own parser says so
            self._parser = None

    def _part_begin(self) -> None:
        self._disposition, self._decoder = b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header = self._value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        raw = options.get(b"name", b"")
        self._name = raw.decode(self.charset, errors="replace")
        if raw in self._names and not self.error:
            self.error = str(twice_error(self._name))
        self._names.add(raw)
        if b"filename" in options:  # a file under another name too: each is spooled open
            self._files += 1
            if self._files > 1 and not self.error:
                self.error = str(twice_error(FILE_FIELD))
        if (
            self._name == FILE_FIELD
            and b"filename" not in options
            and b"filename*" in self._disposition.lower()
            and not self.error
        ):  # the parser drops filename*=: the part would be told it is not a file
            self.error = (
                "the file part names its file only with filename*= (RFC 5987), which "
                "multipart/form-data does not use (RFC 7578): send filename= as well"
            )
        # a text field (a "file" without a plain file name is one too: the app says how
        # to send a photo) must decode
        if b"filename" not in options and self._name != FILE_FIELD:
            self._decoder = codecs.getincrementaldecoder(self.charset)(errors="strict")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._decode(data[start:end], final=False)

    def _part_end(self) -> None:
        self._decode(b"", final=True)

    def _decode(self, data: bytes, final: bool) -> None:
        if self._decoder is None:
            return
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self._decoder = None
            if not self.error:
                self.error = f"form field `{self._name[:64]}`: text must be {self.charset}"


class FormCheck(HttpMiddleware):
    """ASGI middleware: the checks of the module docstring. A repeated query parameter is
    refused at once; a form is checked as the app reads it (a request the app refuses
    first, e.g. without the token, is never read), and its faults are raised from the
    app's ``receive`` as an ``HTTPException`` (422), before any route runs."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        query = scope.get("query_string", b"").decode("latin-1")
        twice = repeated(name for name, _ in parse_qsl(query, keep_blank_values=True))
        if twice:
            await JSONResponse({"error": str(twice_error(twice))}, 422)(scope, receive, send)
            return
        types = [v for k, v in scope.get("headers") or [] if k.lower() == b"content-type"]
        if len(types) > 1:  # which one a parser reads is anyone's guess: neither
            await JSONResponse({"error": "Content-Type given twice"}, 400)(scope, receive, send)
            return
        kind, params = _content_type(types[0] if types else b"")
        if kind == b"application/x-www-form-urlencoded":
            scope = {**scope, "headers": [h for h in scope["headers"] if h[0] != b"content-length"]}
            receive = _urlencoded_receive(receive)
        elif kind == b"multipart/form-data" and b"boundary" in params:
            receive = _multipart_receive(receive, params)
        await self.app(scope, receive, send)


def _content_type(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(value)
    return kind.lower(), params


def _refuse(message: str, status: int = 422) -> Exception:
    from starlette.exceptions import HTTPException

    return HTTPException(status, message)


Receive = Callable[[], Awaitable[Any]]


def _urlencoded_receive(receive: Receive) -> Receive:
    """``receive`` whose first message is the whole urlencoded body, checked and
    ``%``-escaped again (:func:`urlencoded_pairs`); later calls go to ``receive``."""
    done = False

    async def checked() -> Any:
        nonlocal done
        if done:
            return await receive()
        chunks = []
        size = 0
        while True:
            msg = await receive()
            if msg.get("type") != "http.request":
                return msg  # the client left
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > FORM_MAX_BYTES:  # read whole and re-encoded here: kept small
                raise _refuse(FORM_TOO_LARGE, 413)
            if not msg.get("more_body", False):
                break
        done = True
        try:
            pairs = urlencoded_pairs(b"".join(chunks))
        except FormError as exc:
            raise _refuse(str(exc)) from exc
        return {"type": "http.request", "body": urlencode(pairs).encode("ascii")}

    return checked


def _multipart_receive(receive: Receive, params: dict[bytes, bytes]) -> Receive:
    """``receive`` that follows the multipart body through a :class:`MultipartCheck`, and
    raises its fault instead of handing on the chunk it was found in."""
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = ""
    check = MultipartCheck(params[b"boundary"], charset or "utf-8")

    async def checked() -> Any:
        if not charset:
            raise _refuse("unknown charset of the form: send it as UTF-8")
        msg = await receive()
        if msg.get("type") == "http.request":
            check.feed(msg.get("body", b""))
            if check.error:
                raise _refuse(check.error)
        return msg

    return checked
