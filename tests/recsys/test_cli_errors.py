"""Every command that reads a corpus says so in one line, not a traceback, when it is not one."""

import pytest
from typer.testing import CliRunner

from recsys.cli import app

CORPUS_COMMANDS = [
    ["bench", "separation", "--corpus"],
    ["bench", "qbh", "--corpus"],
    ["bench", "singer", "--corpus"],
    ["bench", "tagging", "--corpus"],
    ["bench", "pitch", "--corpus"],
    ["bench", "ingest", "--corpus"],
    ["plot", "singers", "--corpus"],
    ["train", "separator", "--data"],
    ["train", "timbre", "--data"],
    ["train", "gender", "--data"],
    ["train", "melody", "--data"],
    ["train", "pitch", "--data"],
    ["train", "tagger", "--data"],
]


@pytest.mark.parametrize("command", CORPUS_COMMANDS, ids=" ".join)
def test_a_folder_that_is_no_corpus_is_a_one_line_error(command, tmp_path):
    result = CliRunner().invoke(app, [*command, str(tmp_path / "missing")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "not a complete corpus" in result.output and "Traceback" not in result.output
