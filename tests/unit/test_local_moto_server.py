"""moto's server as the local stack runs it: AWS's answers, on connections kept alive as AWS's endpoints keep them."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator

import boto3
import pytest

from local import provision
from local.aws import FAKE_CREDENTIALS
from local.moto_server import Server, WsgiHandler, application

TABLE = "motor-state"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    WsgiHandler.app = application()
    with Server(("127.0.0.1", 0), WsgiHandler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        yield httpd
        httpd.shutdown()
        thread.join()


def _url(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _dynamodb(server: Server) -> object:
    return boto3.client(
        "dynamodb",
        endpoint_url=_url(server),
        region_name="us-east-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def test_boto3_gets_aws_answers_and_errors_through_it(server: Server) -> None:
    dynamodb = _dynamodb(server)
    dynamodb.create_table(  # type: ignore[attr-defined]
        TableName=TABLE,
        KeySchema=[{"AttributeName": "motor_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "motor_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {"motor_id": {"S": "motor-001"}, "version": {"N": "1"}}
    dynamodb.put_item(TableName=TABLE, Item=item)  # type: ignore[attr-defined]
    assert dynamodb.get_item(TableName=TABLE, Key={"motor_id": {"S": "motor-001"}})["Item"] == item  # type: ignore[attr-defined]
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):  # type: ignore[attr-defined]
        dynamodb.put_item(TableName=TABLE, Item=item, ConditionExpression="attribute_not_exists(motor_id)")  # type: ignore[attr-defined]


def _list_tables(connection: http.client.HTTPConnection, *, chunked: bool = False) -> http.client.HTTPResponse:
    body = b"{}"
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    if chunked:
        connection.request("POST", "/", body=iter([body[:1], body[1:]]), headers=headers, encode_chunked=True)
    else:
        connection.request("POST", "/", body=body, headers=headers)
    return connection.getresponse()


def test_one_connection_carries_request_after_request(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        first = _list_tables(connection)
        assert first.status == 200
        assert "TableNames" in json.loads(first.read())
        assert not first.will_close
        socket_after_first = connection.sock
        second = _list_tables(connection)
        assert second.status == 200
        assert "TableNames" in json.loads(second.read())
        assert connection.sock is socket_after_first, "the second request needed a new connection"
    finally:
        connection.close()


def test_a_chunked_request_body_is_read_whole_and_the_connection_stays_usable(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        chunked = _list_tables(connection, chunked=True)
        assert chunked.status == 200
        assert "TableNames" in json.loads(chunked.read())
        after = _list_tables(connection)
        assert after.status == 200
        assert "TableNames" in json.loads(after.read())
    finally:
        connection.close()


def test_the_local_stack_starts_this_server(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    class Recorded:
        def __init__(self, name: str, argv: list[str], **kwargs: object) -> None:
            started.append(argv)

        def start(self, *args: object, **kwargs: object) -> None:
            pass

    monkeypatch.setattr(provision, "Child", Recorded)
    provision.start_moto(tmp_path, lambda line: None)  # type: ignore[arg-type]
    [argv] = started
    assert argv[1:3] == ["-m", "local.moto_server"]


def test_s3_objects_go_in_and_come_back_with_their_length_and_head_answers_it_without_a_body(server: Server) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=_url(server),
        region_name="us-east-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    body = b"model artifact " * 1000
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="model.tar.gz", Body=body)
    assert s3.head_object(Bucket="models", Key="model.tar.gz")["ContentLength"] == len(body)
    assert s3.get_object(Bucket="models", Key="model.tar.gz")["Body"].read() == body
    assert s3.list_objects_v2(Bucket="models")["KeyCount"] == 1
