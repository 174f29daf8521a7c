"""One table of what the endpoint answers, held against the local endpoint and against the container's serving path.

Each row is a request (Content-Type, Accept, body) and what the client gets: the container's status and
body. SageMaker's runtime hands a 200 on as it is and anything else as a ModelError (424) quoting the
container's status and body, which is what the local endpoint must do too.

The container side is a Flask app that does what SageMaker's XGBoost image 3.0-5 does with a script-mode
inference.py (local/script_mode.py cites the files and lines of sagemaker-xgboost-container and
sagemaker-containers 2.8.6.post2 this follows): it shows with the real Flask and werkzeug that the statuses
in the table are what that code path sends, not only what our emulation says.
"""

from __future__ import annotations

import http.client
import json
import sys
import tarfile
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local import script_mode
from local.sagemaker_endpoint import CONTAINER, ModelServer, import_program
from motor_maintenance.features import FEATURE_NAMES
from tests.unit.test_template import TEMPLATE

ENDPOINT = "motor-failure-xgboost"
ROW = ",".join(["0"] * len(FEATURE_NAMES))
CSV = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class Expectation:
    """A request and the container's answer to it: status, and the body's text or a check of it."""

    content_type: str | None
    accept: str | None
    body: bytes
    status: int
    answer: str | Callable[[str], bool]
    answer_type: str = "text/plain; charset=utf-8"


def _csv_probabilities(rows: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        values = [float(line) for line in text.splitlines()]
        return len(values) == rows and all(0.0 <= value <= 1.0 for value in values)

    return check


def _json_predictions(text: str) -> bool:
    answer = json.loads(text)
    return len(answer["predictions"]) == 1 and answer["model_version"].startswith("m-")


TABLE: dict[str, Expectation] = {
    "csv asked": Expectation("text/csv", "text/csv", f"{ROW}\n{ROW}".encode(), 200, _csv_probabilities(2), CSV),
    "no Accept: the template's default, CSV": Expectation(
        "text/csv", None, ROW.encode(), 200, _csv_probabilities(1), CSV
    ),
    "Accept */*: CSV too": Expectation("text/csv", "*/*", ROW.encode(), 200, _csv_probabilities(1), CSV),
    "json asked": Expectation("text/csv", "application/json", ROW.encode(), 200, _json_predictions, "application/json"),
    "no Content-Type: the toolkit says JSON, refused": Expectation(
        None, "text/csv", ROW.encode(), 415, "content type 'application/json' is not supported; send text/csv"
    ),
    "a content type other than CSV": Expectation(
        "application/x-npy", None, b"\x93NUMPY", 415, "content type 'application/x-npy' is not supported; send text/csv"
    ),
    "an answer type other than CSV or JSON": Expectation(
        "text/csv",
        "application/x-protobuf",
        ROW.encode(),
        406,
        "accept type 'application/x-protobuf' is not supported; ask for text/csv or application/json",
    ),
    "a field that is not a number": Expectation(
        "text/csv", None, b"1,abc", 400, "row 1, field 2: 'abc' is not a number"
    ),
    "bytes that are not UTF-8 arrive replaced": Expectation(
        "text/csv", None, b"\xff", 400, "row 1, field 1: '\ufffd' is not a number"
    ),
    "the wrong number of features": Expectation(
        "text/csv", None, b"1,2,3", 400, f"rows have 3 features; the model expects {len(FEATURE_NAMES)}"
    ),
    "no rows": Expectation("text/csv", None, b"\n", 400, "the body holds no CSV rows"),
}


def _matches(expectation: Expectation, text: str) -> bool:
    answer = expectation.answer
    return answer(text) if callable(answer) else text == answer


# ------------------------------------------------------------------ the local endpoint


@pytest.fixture(scope="module")
def model_tar(small_model_run: tuple[dict[str, Any], Path]) -> Path:
    return small_model_run[1] / "model.tar.gz"


@pytest.fixture(scope="module")
def endpoint(model_tar: Path) -> Iterator[ModelServer]:
    with ModelServer(model_tar, ENDPOINT) as running:
        yield running


def _invoke(server: ModelServer, expectation: Expectation) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Length": str(len(expectation.body))}
    if expectation.content_type is not None:
        headers["Content-Type"] = expectation.content_type
    if expectation.accept is not None:
        headers["Accept"] = expectation.accept
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", f"/endpoints/{ENDPOINT}/invocations", body=expectation.body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("case", TABLE)
def test_the_local_endpoint_answers_as_the_table_says(endpoint: ModelServer, case: str) -> None:
    expectation = TABLE[case]

    status, headers, body = _invoke(endpoint, expectation)

    if expectation.status == 200:
        assert status == 200, body
        assert headers["content-type"] == expectation.answer_type
        assert _matches(expectation, body.decode())
        return
    assert status == 424
    assert headers["x-amzn-errortype"] == "ModelError"
    error = json.loads(body)
    assert error["OriginalStatusCode"] == expectation.status
    assert _matches(expectation, error["OriginalMessage"]), error
    kind = "client" if expectation.status < 500 else "server"
    assert error["Message"].startswith(
        f'Received {kind} error ({expectation.status}) from {CONTAINER} with message "{error["OriginalMessage"]}".'
    )


def test_the_local_endpoint_answers_a_request_without_accept_as_the_templates_model_does() -> None:
    environment = TEMPLATE["Resources"]["XGBoostModel"]["Properties"]["PrimaryContainer"]["Environment"]

    assert environment["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == script_mode.DEFAULT_INVOCATIONS_ACCEPT


# ------------------------------------------------------------------ the container's serving path, in Flask


def _container_app(program: types.ModuleType, model: Any, default_accept: str) -> Any:
    """A Flask app serving `program` as sagemaker-containers 2.8.6.post2 does (the lines cited are that tag's)."""
    flask = pytest.importorskip("flask")

    class ClientError(Exception):
        """_errors.ClientError: what error_wrapper re-raises anything as; nothing handles it."""

    def error_wrapper(function: Callable[..., Any]) -> Callable[..., Any]:  # _functions.py lines 80-97
        def wrapper(*args: Any) -> Any:
            try:
                return function(*args)
            except Exception as exc:
                raise ClientError(exc) from exc

        return wrapper

    input_fn, predict_fn, output_fn = map(error_wrapper, (program.input_fn, program.predict_fn, program.output_fn))
    app = flask.Flask("container")

    @app.post("/invocations")
    def transform() -> Any:  # _transformer.py lines 187-238, with _worker.Request's properties (lines 176-216)
        request = flask.request
        content_type = request.headers.get("ContentType") or request.headers.get("Content-Type") or "application/json"
        accept = request.headers.get("Accept")
        accept = default_accept if not accept or accept == "*/*" else accept
        content = request.get_data(as_text=content_type in ("application/json", "text/csv"))
        result = output_fn(predict_fn(input_fn(content, content_type), model), accept)
        if isinstance(result, tuple):
            return flask.Response(response=result[0], mimetype=result[1])
        return result

    return app


@pytest.fixture(scope="module")
def container(model_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The artifact's own code/inference.py and model, behind the container's serving path."""
    model_dir = tmp_path_factory.mktemp("opt-ml-model")
    with tarfile.open(model_tar) as archive:
        archive.extractall(model_dir, filter="data")
    name = "_container_inference"
    program = import_program(name, model_dir / "code" / "inference.py")
    try:
        yield _container_app(program, program.model_fn(str(model_dir)), script_mode.DEFAULT_INVOCATIONS_ACCEPT)
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("case", TABLE)
def test_the_containers_serving_path_answers_as_the_table_says(container: Any, case: str) -> None:
    expectation = TABLE[case]
    headers = {key: value for key, value in (("Accept", expectation.accept),) if value is not None}
    client = container.test_client()

    if expectation.content_type is None:
        # Flask's test client adds no Content-Type for a bytes body without one.
        response = client.post("/invocations", data=expectation.body, headers=headers)
    else:
        response = client.post(
            "/invocations", data=expectation.body, headers=headers, content_type=expectation.content_type
        )

    assert response.status_code == expectation.status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == expectation.answer_type
    assert _matches(expectation, response.get_data(as_text=True))


def test_what_the_inference_code_raises_is_the_generic_500_in_both() -> None:
    """A bug (not a refusal) in the inference code: Flask's page, which the emulation copies word for word."""
    werkzeug_exceptions = pytest.importorskip("werkzeug.exceptions")
    program = types.ModuleType("broken_inference")
    exec(  # noqa: S102 - a fixed snippet: an inference script whose predict_fn fails
        textwrap.dedent(
            """
            def input_fn(body, content_type):
                return body

            def predict_fn(data, model):
                raise RuntimeError("the model fell over")

            def output_fn(prediction, accept):
                return prediction, accept
            """
        ),
        program.__dict__,
    )

    emulated = script_mode.transform(
        program, None, b"1", content_type="text/csv", accept=None, default_accept="text/csv"
    )
    served = (
        _container_app(program, None, "text/csv").test_client().post("/invocations", data=b"1", content_type="text/csv")
    )

    assert (emulated.status, emulated.content_type) == (500, script_mode.HTML)
    assert (served.status_code, served.headers["Content-Type"]) == (500, script_mode.HTML)
    assert emulated.body == served.get_data() == werkzeug_exceptions.InternalServerError().get_body().encode()
