"""The docs hold together: links resolve, images are committed, each reference table has one home, commands exist.

The pages are read as a user reads them: every link and image in README.md, docs/*.md and
events/README.md must lead somewhere, every page under docs/ is in the README's index, the reference
tables (metrics, dead-letter queues, parameters, payloads, configuration, sample events) each live on
one page and cover what the template and the code define, and every command in a bash block names a
Make target, a script option, a SAM function or an AWS API operation and parameter that exists.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from tests.support import ROOT
from tests.unit.test_template import TEMPLATE, resources

DOCS = ROOT / "docs"
PAGES = (ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "events" / "README.md")
IMAGES = DOCS / "img"
IMAGES_MAX_BYTES = 500_000  # screenshots and plots, not data: a clone stays small
FUNCTIONS = {name for name, _ in resources(TEMPLATE, "AWS::Serverless::Function")}

# Words about how the project was made, or its past, have no place in pages about the product.
HISTORY = re.compile(
    r"\bthe brief\b|\bthe issue\b|previous release|until now|shipped before"
    r"|before the last|\buntuned\b",
    re.IGNORECASE,
)

# The reference tables, each on the one page that holds it, found by its header row.
REFERENCE_TABLES = {
    "metrics": ("operations.md", "| metric | unit | dimensions | function | meaning |"),
    "dead-letter queues": ("operations.md", "| queue (output) | what lands there | what the message holds |"),
    "parameters": ("deploy.md", "| parameter | default | meaning |"),
    "telemetry fields": ("reference.md", "| field | type, unit | required | accepted |"),
    "action fields": ("reference.md", "| field | required | meaning |"),
    "alert attributes": ("reference.md", "| attribute | values |"),
    "configuration": ("reference.md", "| key | default | meaning |"),
    "sample events": ("../events/README.md", "| event | function | what it shows on a fresh stack |"),
    "IAM per function": ("security.md", "| function | calls its code makes | on |"),
}


# ------------------------------------------------------------------ reading the pages


def prose(page: Path) -> str:
    """The page without its fenced code blocks (where `#` is a comment, not a heading)."""
    return re.sub(r"(?ms)^```.*?^```", "", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(page: Path) -> set[str]:
    return {slug(heading) for heading in re.findall(r"(?m)^#+ (.+)$", prose(page))}


def links(page: Path) -> list[str]:
    """Targets of the page's links and images, in order."""
    return re.findall(r"\]\(([^)\s]+)\)", prose(page))


def tables(page: Path) -> Iterator[tuple[str, list[list[str]]]]:
    """Each table of the page: its header row and its body rows split into cells."""
    rows: list[str] = []
    for line in [*prose(page).splitlines(), ""]:
        if line.startswith("|"):
            rows.append(line.strip())
            continue
        if len(rows) > 2:
            yield rows[0], [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
        rows = []


def table(page: Path, header: str) -> list[list[str]]:
    found = [body for head, body in tables(page) if head == header]
    assert len(found) == 1, f"{page.name}: {len(found)} tables headed {header!r}"
    return found[0]


def code_names(cell: str) -> list[str]:
    """The `code` names in a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def _substitutions(line: str) -> tuple[str, list[str]]:
    """The line with each `$( ... )` replaced by a word, and the commands those held."""
    inner: list[str] = []
    while (start := line.find("$(")) >= 0:
        depth, end = 0, start + 1
        for end in range(start + 1, len(line)):
            depth += {"(": 1, ")": -1}.get(line[end], 0)
            if depth == 0:
                break
        inner.append(line[start + 2 : end])
        line = f"{line[:start]}SUBSTITUTION{line[end + 1 :]}"
    return line, inner


def _split(line: str) -> Iterator[list[str]]:
    line, inner = _substitutions(line)
    for command in inner:
        yield from _split(command)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    words: list[str] = []
    redirect = False
    for word in lexer:
        if redirect:
            redirect = False
        elif word in {">", ">>", "<", "2>"}:
            redirect = True
        elif set(word) <= set(";&|()"):
            yield words
            words = []
        elif words or not re.fullmatch(r"[A-Z_]+=.*", word):  # VAR=value before a command sets, not runs
            words.append(word)
    yield words


def shell_commands(text: str) -> list[list[str]]:
    """Every command in the text's bash blocks, as its words: continuations joined, `$( )` commands included."""
    found: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            found.extend(words for words in _split(line) if words)
    return found


def commands_starting(program: str) -> list[tuple[str, list[str]]]:
    return [
        (page.relative_to(ROOT).as_posix(), words)
        for page in PAGES
        for words in shell_commands(page.read_text(encoding="utf-8"))
        if words[0] == program
    ]


def options(words: list[str]) -> list[str]:
    return [word.split("=", 1)[0][2:] for word in words if word.startswith("--")]


@cache
def make_targets() -> dict[str, str]:
    """The Makefile's targets and their `##` help (empty when a target has none)."""
    makefile = (ROOT / "Makefile").read_text()
    return {
        match[1]: match[2] or "" for match in re.finditer(r"(?m)^([a-z][a-z0-9-]*):[^=\n]*?(?:##\s*(.*))?$", makefile)
    }


@cache
def script_options() -> set[str]:
    """Every `--option` an argparse parser of this repository defines, read from the source."""
    found: set[str] = set()
    for folder in ("device", "model", "scripts", "benchmarks", "local", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                    names = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
                    found |= {name[2:] for name in names if isinstance(name, str) and name.startswith("--")}
    return found


# ------------------------------------------------------------------ links, images, the index


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_leads_to_a_file_of_the_repository_and_a_heading_of_it(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_every_image_the_pages_show_is_committed_under_docs_img_and_small() -> None:
    shown = {
        (page.parent / target).resolve()
        for page in PAGES
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", prose(page))
    }
    assert shown, "the pages show no image"
    for image in shown:
        assert image.parent == IMAGES, f"{image} is not under docs/img/"
        assert image.is_file(), f"{image.relative_to(ROOT)} is shown but missing"
    assert sum(image.stat().st_size for image in IMAGES.iterdir()) <= IMAGES_MAX_BYTES
    assert not [path.name for path in IMAGES.iterdir() if path not in shown], "an image no page shows"


def test_the_readme_indexes_every_page_under_docs() -> None:
    index = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    indexed = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", index))
    assert indexed == {page.relative_to(ROOT).as_posix() for page in DOCS.glob("*.md")}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_the_pages_speak_of_the_product_as_it_is(page: Path) -> None:
    assert not HISTORY.findall(page.read_text(encoding="utf-8")), "history or how the project was made: CHANGELOG.md"


# ------------------------------------------------------------------ the reference tables


def row_text(row: list[str]) -> str:
    """A table row's text with its spacing evened out: a copied row compares equal."""
    return " | ".join(" ".join(cell.split()) for cell in row)


def other_tables(home: Path) -> Iterator[tuple[Path, list[list[str]]]]:
    """Every table of every page but `home`."""
    for page in PAGES:
        if page.resolve() != home.resolve():
            for _, rows in tables(page):
                yield page, rows


def test_each_reference_table_lives_on_one_page() -> None:
    for name, (home, header) in REFERENCE_TABLES.items():
        rows = {row_text(row) for row in table(DOCS / home, header)}
        for page, other in other_tables(DOCS / home):
            copied = rows & {row_text(row) for row in other}
            assert not copied, f"{page.relative_to(ROOT)} copies rows of the {name} table: {sorted(copied)[:3]}"


def test_the_metrics_and_dead_letter_tables_have_no_second_home() -> None:
    metrics = {code_names(row[0])[0] for row in table(DOCS / "operations.md", REFERENCE_TABLES["metrics"][1])}
    queues = {code_names(row[0])[0] for row in table(DOCS / "operations.md", REFERENCE_TABLES["dead-letter queues"][1])}
    for page, rows in other_tables(DOCS / "operations.md"):
        for row in rows:
            named = {name for cell in row for name in code_names(cell) for name in re.findall(r"\w+", name)}
            assert len(named & metrics) < 3, f"{page.relative_to(ROOT)} tabulates metrics: {row[0]}"
            assert not set(code_names(row[0])) & queues, f"{page.relative_to(ROOT)} tabulates dead letters: {row[0]}"


def test_the_dead_letter_table_covers_every_failure_destination_of_the_template() -> None:
    rows = table(DOCS / "operations.md", REFERENCE_TABLES["dead-letter queues"][1])
    # Given where the template sends what fails: rules' error actions, functions' and mappings' on-failure
    queue_outputs = {
        output["Value"]["Ref"]: name
        for name, output in TEMPLATE["Outputs"].items()
        if isinstance(output["Value"], dict) and output["Value"].get("Ref") in TEMPLATE["Resources"]
    }
    senders: set[tuple[str, str]] = set()
    for _, rule in resources(TEMPLATE, "AWS::IoT::TopicRule"):
        queue = rule["Properties"]["TopicRulePayload"]["ErrorAction"]["Sqs"]["QueueUrl"]["Ref"]
        senders.add((queue_outputs[queue], "rule"))
    for _, function in resources(TEMPLATE, "AWS::Serverless::Function"):
        queue = function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
        senders.add((queue_outputs[queue["Fn::GetAtt"][0]], "function"))
    for name, mapping in resources(TEMPLATE, "AWS::Lambda::EventSourceMapping"):
        queue = mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        senders.add((queue_outputs[queue["Fn::GetAtt"][0]], name))
    # Then the table has a row for each: its queue's output, and the mapping named where it is one
    for output, sender in senders:
        if sender in {"rule", "function"}:
            assert [output] in [code_names(row[0]) for row in rows], f"no dead-letter row for a {sender} -> {output}"
        else:
            assert any(code_names(row[0])[0] == output and sender in row[0] for row in rows), (
                f"no dead-letter row for {sender} -> {output}"
            )


def test_the_deploy_page_describes_every_template_parameter_and_no_other() -> None:
    rows = table(DOCS / "deploy.md", REFERENCE_TABLES["parameters"][1])
    documented = {name for row in rows for name in code_names(row[0])}
    assert documented == set(TEMPLATE["Parameters"])


def test_every_sample_event_is_described_with_the_function_it_is_for() -> None:
    rows = table(ROOT / "events" / "README.md", REFERENCE_TABLES["sample events"][1])
    described = {code_names(row[0])[0]: code_names(row[1])[0] for row in rows}
    assert set(described) == {path.name for path in (ROOT / "events").glob("*.json")}
    assert set(described.values()) <= FUNCTIONS


# ------------------------------------------------------------------ the commands


def test_every_make_command_names_a_target_make_help_lists() -> None:
    for page, words in commands_starting("make"):
        for target in [word for word in words[1:] if "=" not in word and not word.startswith("-")]:
            assert make_targets().get(target), f"{page}: make {target} is not a target with a ## help line"


def test_every_python_command_names_a_script_and_options_that_exist() -> None:
    commands = commands_starting(".venv/bin/python") + commands_starting("python")
    assert commands
    for page, words in commands:
        if words[1] in {"-c", "-"}:  # a program in the command line or on standard input: no script to look for
            continue
        path = ROOT / (words[2].replace(".", "/") + ".py" if words[1] == "-m" else words[1])
        assert path.is_file(), f"{page}: {shlex.join(words)}: no {path.relative_to(ROOT)}"
        unknown = set(options(words)) - script_options()
        assert not unknown, f"{page}: {shlex.join(words)}: no parser defines --{', --'.join(sorted(unknown))}"


def test_every_sam_command_names_a_function_and_an_event_of_this_repository() -> None:
    commands = commands_starting("sam")
    assert commands
    for page, words in commands:
        assert words[1] in {"build", "deploy", "delete", "logs", "local", "validate"}, f"{page}: {shlex.join(words)}"
        named = [words[i + 1] for i, word in enumerate(words[:-1]) if word in {"-n", "--name"}]
        if words[1:3] == ["local", "invoke"]:
            named.append(words[3])
            event = words[words.index("-e") + 1]
            assert (ROOT / event).is_file(), f"{page}: {shlex.join(words)}: no {event}"
        assert set(named) <= FUNCTIONS, f"{page}: {shlex.join(words)}"


# Options the AWS CLI adds or renames, which the API models do not have.
CLI_OPTIONS = {"query", "output", "region", "profile", "endpoint-url", "cli-binary-format", "no-cli-pager"}
CLI_COMMAND_OPTIONS = {
    ("iot", "create-keys-and-certificate"): {"certificate-pem-outfile", "public-key-outfile", "private-key-outfile"},
    ("iot", "create-certificate-from-csr"): {"certificate-pem-outfile"},
    ("sns", "subscribe"): {"notification-endpoint"},
}
CLI_COMMANDS = {("s3", "cp"), ("s3", "ls"), ("s3", "mb")}  # the CLI's own commands, no API operation of that name


@cache
def _operation_options(service: str, command: str) -> set[str] | None:
    """The CLI options of an API operation (None: no such operation), from botocore's service model."""
    model = botocore.session.get_session().get_service_model(service)
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    if command not in operations:
        return None
    shape = model.operation_model(operations[command]).input_shape
    members = {xform_name(name, "-"): member for name, member in (shape.members.items() if shape else [])}
    return set(members) | {f"no-{name}" for name, member in members.items() if member.type_name == "boolean"}


def test_every_aws_command_is_an_api_operation_with_the_parameters_it_is_given() -> None:
    commands = commands_starting("aws")
    assert commands
    for page, words in commands:
        service, command = words[1], words[2]
        if (service, command) in CLI_COMMANDS:
            continue
        known = _operation_options(service, command)
        assert known is not None, f"{page}: aws {service} {command} is no operation of {service}"
        allowed = known | CLI_OPTIONS | CLI_COMMAND_OPTIONS.get((service, command), set())
        unknown = set(options(words)) - allowed
        assert not unknown, f"{page}: aws {service} {command} has no --{', --'.join(sorted(unknown))}"


def test_the_command_reader_finds_commands_in_substitutions_pipes_and_continuations() -> None:
    text = (
        "```bash\n"
        'ENDPOINT="https://$(aws iot describe-endpoint --endpoint-type iot:Data-ATS --query a --output text)"\n'
        "aws ssm get-parameter --name x |\n"
        "  .venv/bin/python scripts/check_config.py -     # a comment\n"
        "sam build && sam deploy \\\n  --guided > out.txt\n"
        "```\n"
    )
    assert shell_commands(text) == [
        ["aws", "iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS", "--query", "a", "--output", "text"],
        ["aws", "ssm", "get-parameter", "--name", "x"],
        [".venv/bin/python", "scripts/check_config.py", "-"],
        ["sam", "build"],
        ["sam", "deploy", "--guided"],
    ]
