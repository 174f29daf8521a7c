"""The template's Firehose delivery streams as the local stack runs them: where and how each writes the archive.

`delivery_stream` reads an `AWS::KinesisFirehose::DeliveryStream` with an
`ExtendedS3DestinationConfiguration` (Prefix, ErrorOutputPrefix, FileExtension, BufferingHints, and
DataFormatConversionConfiguration against an `AWS::Glue::Table` of the template, whose columns become
the Parquet schema). What local.firehose cannot emulate faithfully (another destination, a Lambda
processor, dynamic partitioning, a conversion to ORC) raises TemplateError, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local.cfn import TemplateError

DEFAULT_SIZE_MB = 5
DEFAULT_CONVERSION_SIZE_MB = 128
"""Firehose's buffer size by default, and by default when it converts the record format (at least 64 MB)."""
DEFAULT_INTERVAL_S = 300
DEFAULT_PREFIX_TIME = "!{timestamp:yyyy/MM/dd/HH/}"
"""What Firehose puts in front of an object when the prefix has no timestamp expression."""
DESTINATION_PROPERTIES = frozenset(
    {
        *("BucketARN", "RoleARN", "Prefix", "ErrorOutputPrefix", "FileExtension", "BufferingHints"),
        *("CompressionFormat", "DataFormatConversionConfiguration", "CloudWatchLoggingOptions"),
        *("EncryptionConfiguration", "S3BackupMode", "CustomTimeZone"),
    }
)
"""The properties local.firehose emulates or that have no local meaning (logging, encryption, the roles)."""
_EXPRESSION = re.compile(r"!\{([^}:]+):([^}]*)\}")
_JAVA_TIME = re.compile(r"yyyy|MM|dd|HH|mm|ss")
_STRFTIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}

Value = Callable[[Any, str], Any]
"""Resolves a raw template value with the parameters' defaults (local.template's reader)."""


@dataclass(frozen=True)
class DeliveryStreamSpec:
    """One delivery stream to S3 (a folder locally), with the Glue columns when it converts to Parquet."""

    logical_id: str
    name: str
    """The stream's name: in Firehose's object names."""
    prefix: str
    error_prefix: str
    extension: str
    buffer_size_mb: int
    buffer_interval_s: int
    columns: tuple[tuple[str, str], ...] | None = None
    """(name, Glue type) of the table records are converted against; None: records are written as they come."""
    compression: str = "snappy"
    """The Parquet compression (ParquetSerDe.Compression)."""
    database: str = ""
    table: str = ""
    condition: str | None = None


def expand_prefix(prefix: str, arrived: datetime, error_type: str | None = None) -> str:
    """A prefix with `!{timestamp:<pattern>}` (UTC) and `!{firehose:error-output-type}` expanded."""

    def expand(found: re.Match[str]) -> str:
        namespace, argument = found.group(1), found.group(2)
        if namespace == "timestamp":
            return arrived.strftime(_JAVA_TIME.sub(lambda token: _STRFTIME[token.group(0)], argument))
        if namespace == "firehose" and argument == "error-output-type" and error_type is not None:
            return error_type
        raise ValueError(f"prefix expression {found.group(0)!r} is not emulated by the local stack")

    return _EXPRESSION.sub(expand, prefix)


def delivery_stream(
    logical_id: str, resource: dict[str, Any], props: dict[str, Any], document: dict[str, Any], value: Value
) -> DeliveryStreamSpec:
    """The spec of one AWS::KinesisFirehose::DeliveryStream; TemplateError for what cannot be emulated."""
    where = f"{logical_id}.Properties"
    kind = value(props.get("DeliveryStreamType", "DirectPut"), f"{where}.DeliveryStreamType")
    if kind != "DirectPut":
        raise TemplateError(f"{where}.DeliveryStreamType: {kind} - the local stack emulates DirectPut streams")
    others = sorted(set(props) - {"DeliveryStreamName", "DeliveryStreamType", "ExtendedS3DestinationConfiguration"})
    others = [name for name in others if name not in ("Tags", "DeliveryStreamEncryptionConfigurationInput")]
    if others or "ExtendedS3DestinationConfiguration" not in props:
        raise TemplateError(f"{where}: only an ExtendedS3DestinationConfiguration is emulated locally ({others})")
    where += ".ExtendedS3DestinationConfiguration"
    destination = props["ExtendedS3DestinationConfiguration"] or {}
    unknown = sorted(set(destination) - DESTINATION_PROPERTIES)
    if unknown:
        raise TemplateError(f"{where}: {', '.join(unknown)} not emulated by the local stack (local.firehose)")
    raw_name = props.get("DeliveryStreamName")
    name = raw_name if isinstance(raw_name, str) else logical_id
    prefix = _text(value(destination.get("Prefix", ""), f"{where}.Prefix"), f"{where}.Prefix")
    if "!{timestamp:" not in prefix:
        prefix += DEFAULT_PREFIX_TIME
    error_prefix = _text(value(destination.get("ErrorOutputPrefix", ""), f"{where}.ErrorOutputPrefix"), where)
    for text, field in ((prefix, "Prefix"), (error_prefix, "ErrorOutputPrefix")):
        try:
            expand_prefix(text, datetime(2000, 1, 1), error_type="processing-failed")
        except ValueError as exc:
            raise TemplateError(f"{where}.{field}: {exc}") from exc
    hints = value(destination.get("BufferingHints") or {}, f"{where}.BufferingHints")
    conversion = destination.get("DataFormatConversionConfiguration") or {}
    columns, compression, database, table = None, "snappy", "", ""
    enabled = value(conversion.get("Enabled", True), f"{where}.DataFormatConversionConfiguration.Enabled")
    if conversion and str(enabled).lower() != "false":
        columns, compression, database, table = _conversion(destination, document, value, where)
    size_default = DEFAULT_CONVERSION_SIZE_MB if columns is not None else DEFAULT_SIZE_MB
    return DeliveryStreamSpec(
        logical_id=logical_id,
        name=name,
        prefix=prefix,
        error_prefix=error_prefix,
        extension=_text(value(destination.get("FileExtension", ""), f"{where}.FileExtension"), where),
        buffer_size_mb=int(hints.get("SizeInMBs", size_default)),
        buffer_interval_s=int(hints.get("IntervalInSeconds", DEFAULT_INTERVAL_S)),
        columns=columns,
        compression=compression,
        database=database,
        table=table,
        condition=resource.get("Condition"),
    )


def _conversion(
    destination: dict[str, Any], document: dict[str, Any], value: Value, where: str
) -> tuple[tuple[tuple[str, str], ...], str, str, str]:
    """The Glue columns, Parquet compression, database and table of a record format conversion."""
    where += ".DataFormatConversionConfiguration"
    conversion = destination["DataFormatConversionConfiguration"]
    output = (conversion.get("OutputFormatConfiguration") or {}).get("Serializer") or {}
    if set(output) != {"ParquetSerDe"}:
        raise TemplateError(f"{where}.OutputFormatConfiguration: only ParquetSerDe is emulated locally ({output!r})")
    deserializer = (conversion.get("InputFormatConfiguration") or {}).get("Deserializer") or {}
    if set(deserializer) - {"OpenXJsonSerDe", "HiveJsonSerDe"}:
        raise TemplateError(f"{where}.InputFormatConfiguration: {sorted(deserializer)} is not a JSON deserializer")
    compression = str(value((output["ParquetSerDe"] or {}).get("Compression", "SNAPPY"), where)).lower()
    if compression not in ("snappy", "gzip", "uncompressed"):
        raise TemplateError(f"{where}: Parquet compression {compression!r} is not emulated locally")
    schema = conversion.get("SchemaConfiguration") or {}
    raw_table = schema.get("TableName")
    table_id = raw_table.get("Ref") if isinstance(raw_table, dict) and len(raw_table) == 1 else None
    resource = (document.get("Resources") or {}).get(table_id or "")
    if not isinstance(resource, dict) or resource.get("Type") != "AWS::Glue::Table":
        raise TemplateError(
            f"{where}.SchemaConfiguration.TableName: {raw_table!r} is not !Ref of an AWS::Glue::Table of this "
            "template, whose columns the local stack converts records against"
        )
    table_input = (resource.get("Properties") or {}).get("TableInput") or {}
    raw_columns = (table_input.get("StorageDescriptor") or {}).get("Columns") or []
    columns = tuple((str(c["Name"]), str(c["Type"])) for c in raw_columns if isinstance(c, dict))
    if not columns:
        raise TemplateError(f"{table_id}.Properties.TableInput.StorageDescriptor.Columns: no columns")
    table_name = table_input.get("Name")
    return columns, compression, _name(schema.get("DatabaseName")), str(table_name or table_id)


def _name(raw: Any) -> str:
    """A name as written, or the logical id a `!Ref` names (the local stack has no Glue catalog to ask)."""
    if isinstance(raw, dict) and len(raw) == 1 and "Ref" in raw:
        return str(raw["Ref"])
    return "" if raw is None else str(raw)


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise TemplateError(f"{where}: expected text, got {raw!r}")
    return raw
