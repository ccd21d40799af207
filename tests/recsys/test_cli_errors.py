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


def _run(args, monkeypatch, data_dir=None):
    from recsys.settings import get_settings

    if data_dir is not None:
        monkeypatch.setenv("RECSYS_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        get_settings.cache_clear()
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_a_catalog_that_cannot_be_opened_is_a_one_line_error(tmp_path, monkeypatch):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "catalog.sqlite").write_text("not a database")
    a_file = tmp_path / "a file"
    a_file.write_text("x")
    for data_dir in (damaged, a_file):
        result = _run(["search", "tracks", "1"], monkeypatch, data_dir)
        assert result.exit_code == 2 and "cannot open the catalog" in result.output


def test_reading_a_catalog_that_is_not_there_says_so_and_makes_none(tmp_path, monkeypatch):
    mistyped = tmp_path / "dta"
    for args in (["search", "tracks", "1"], ["search", "tags", "--tag", "piano"], ["db", "check"],
                 ["db", "rebuild"]):
        result = _run(args, monkeypatch, mistyped)
        assert result.exit_code != 0 and "no catalog at" in result.output, args
        assert not mistyped.exists()


def test_an_empty_data_dir_variable_means_the_default(monkeypatch):
    from recsys.settings import Settings

    monkeypatch.setenv("RECSYS_DATA_DIR", "")
    assert Settings().data_dir == Settings.model_fields["data_dir"].default


def test_unknown_migration_revisions_are_one_line_errors(tmp_path, monkeypatch):
    for args in (["db", "upgrade", "nosuchrev"], ["db", "upgrade", "+5"],
                 ["db", "upgrade", ""], ["db", "downgrade", "nosuchrev"]):
        result = _run(args, monkeypatch, tmp_path / "data")
        assert result.exit_code != 0 and "error:" in result.output, args


def test_ingest_refuses_a_damaged_corpus_and_survives_a_symlink_loop(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "corpus.json").write_text("{bad")
    result = _run(["ingest", corpus], monkeypatch, tmp_path / "data")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = _run(["ingest", tmp_path / "a"], monkeypatch, tmp_path / "data")
    assert "failed 1" in result.output


def test_output_paths_in_the_way_are_refused_before_any_work(tmp_path, monkeypatch):
    a_file = tmp_path / "a file"
    a_file.write_text("x")
    runs = [
        (["corpus", "build", "--out", a_file, "--songs", "1"], "is a file"),
        (["corpus", "build", "--out", tmp_path / "c", "--songs", "1", "--tune-offset",
          "100000"], "candidates"),
        (["plot", "singers", "--corpus", tmp_path, "--out", tmp_path], "is a folder"),
        (["plot", "singers", "--corpus", tmp_path, "--out", a_file / "map.png"], "is a file"),
    ]
    for args, message in runs:
        result = _run(args, monkeypatch, tmp_path / "data")
        assert result.exit_code == 2 and message in result.output, result.output
