"""What SageMaker's XGBoost container does between an /invocations request and a script-mode inference.py.

Read from the image's serving code, not guessed: sagemaker-xgboost-container (image 3.0-5) serves a single
model with gunicorn and `serving.main`, whose `_user_module_transformer` builds a
`sagemaker_containers.beta.framework.transformer.Transformer` from the script's functions
(src/sagemaker_xgboost_container/serving.py lines 116-156, commit cb8df91). That is sagemaker-containers
2.8.6.post2 (the image's requirements.txt), and in it:

- `_worker.Request` (src/sagemaker_containers/_worker.py lines 176-216): a missing Content-Type is
  `application/json`; a missing Accept, or `*/*`, is SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default
  `application/json`, _env.py line 903); a body of exactly `application/json` or `text/csv` arrives as text
  (decoded with errors="replace", werkzeug's get_data), any other as bytes.
- `Transformer.__init__` wraps input_fn, predict_fn and output_fn in `_functions.error_wrapper`
  (_transformer.py lines 164-172; _functions.py lines 91-95): whatever they raise becomes a
  `ClientError`, which no handler catches, so Flask answers 500 with werkzeug's InternalServerError page.
  The 415 and 406 answers `_default_transform_fn` has for UnsupportedFormatError (lines 226-238) are thus
  unreachable from a script's own functions.
- `Transformer.transform` (lines 198-207) sends a tuple `(body, content type)` as a 200 Response with that
  mimetype (werkzeug adds `; charset=utf-8` to a text/* type); anything else is the Flask view's return
  value: a str or bytes is a 200 `text/html` page, a callable is run as a WSGI application
  (flask.app.Flask.make_response), which is how a script answers with a status of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("local.sagemaker_endpoint")

DEFAULT_CONTENT_TYPE = "application/json"
ANY = "*/*"
TEXT_TYPES = ("application/json", "text/csv")
"""Request types whose body the toolkit hands to input_fn as text (sagemaker_containers._content_types.UTF8_TYPES)."""
DEFAULT_INVOCATIONS_ACCEPT = "text/csv"
"""What template.yaml sets SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT to (tests/unit/test_endpoint_contract.py checks)."""
HTML = "text/html; charset=utf-8"
INTERNAL_SERVER_ERROR_PAGE = (
    "<!doctype html>\n"
    "<html lang=en>\n"
    "<title>500 Internal Server Error</title>\n"
    "<h1>Internal Server Error</h1>\n"
    "<p>The server encountered an internal error and was unable to complete your request. Either the server is"
    " overloaded or there is an error in the application.</p>\n"
)
"""Flask's answer to an exception a view does not handle: werkzeug.exceptions.InternalServerError().get_body()."""


@dataclass(frozen=True)
class Answer:
    """What the container sends back for one invocation; `rows` scored when it is a 200."""

    status: int
    body: bytes
    content_type: str
    rows: int = 0


def transform(
    program: ModuleType, model: Any, body: bytes, *, content_type: str | None, accept: str | None, default_accept: str
) -> Answer:
    """input_fn -> predict_fn -> output_fn as the toolkit calls them, and the answer it makes of the result."""
    content_type = content_type or DEFAULT_CONTENT_TYPE
    accept = default_accept if not accept or accept == ANY else accept
    content: bytes | str = body.decode("utf-8", "replace") if content_type in TEXT_TYPES else body
    try:
        data = program.input_fn(content, content_type)
        result = program.output_fn(program.predict_fn(data, model), accept)
        if isinstance(result, tuple):
            payload, mimetype = result
            return Answer(200, _encoded(payload), _with_charset(str(mimetype)), _row_count(data))
        if isinstance(result, str | bytes | bytearray):
            return Answer(200, _encoded(result), HTML, _row_count(data))
        if callable(result):
            return _run_wsgi(result)
        raise TypeError(f"output_fn returned a {type(result).__name__}, which Flask cannot send")
    except Exception:
        # The container's log has the traceback; the client gets the generic page.
        log.exception("the inference code raised: the container answers 500")
        return Answer(500, INTERNAL_SERVER_ERROR_PAGE.encode(), HTML)


def _run_wsgi(application: Callable[..., Any]) -> Answer:
    """Run a WSGI application output_fn returned, as Flask's Response.force_type does."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started.update(status=status, headers=headers)
        return lambda _data: None

    chunks = application(
        {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "wsgi.url_scheme": "http"}, start_response
    )
    body = b"".join(chunks)
    headers = {name.lower(): value for name, value in started["headers"]}
    return Answer(int(str(started["status"]).split()[0]), body, headers.get("content-type", HTML))


def _encoded(payload: str | bytes | bytearray) -> bytes:
    return payload.encode() if isinstance(payload, str) else bytes(payload)


def _with_charset(mimetype: str) -> str:
    """werkzeug's get_content_type for the types a model answers: text/* gets the charset Flask encodes with."""
    return f"{mimetype}; charset=utf-8" if mimetype.startswith("text/") else mimetype


def _row_count(data: Any) -> int:
    """Rows of input_fn's result: a matrix's first dimension, else its length."""
    shape = getattr(data, "shape", None)
    if shape:
        return int(shape[0])
    return len(data) if hasattr(data, "__len__") else 1
