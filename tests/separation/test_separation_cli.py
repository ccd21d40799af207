"""`recsys separate` end to end: good files are written, bad audio gets the loader's error."""

import json
import shutil

import numpy as np
import soundfile as sf
import torch
from typer.testing import CliRunner

from embeddings.separation import bsrnn
from embeddings.separation.bsrnn import BSRNN, BSRNNConfig
from recsys.cli import app

SR = 16000


def _tiny_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "weights"
    BSRNN(BSRNNConfig.named("tiny")).save(weights / "bsrnn-cpu.safetensors",
                                          version="bsrnn-tiny-test", val_sdr=0.0)
    monkeypatch.setattr(bsrnn, "WEIGHTS_DIR", weights)


def test_separate_writes_both_stems_and_reports_bad_audio(tmp_path, monkeypatch):
    _tiny_weights(tmp_path, monkeypatch)
    good = tmp_path / "song one.wav"
    t = np.arange(3 * SR) / SR
    sf.write(good, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050)
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"this is not audio at all" * 10)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["separate", str(bad), str(good), "--out", str(out),
                                      "--threads", "1"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "broken.mp3" in result.output and "no audio stream" in result.output
    vocals, sr = sf.read(out / "song one.vocals.wav")
    accompaniment, _ = sf.read(out / "song one.accompaniment.wav")
    assert sr == SR and len(vocals) == len(accompaniment) > 0
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert not (out / "broken.vocals.wav").exists()

    one_pass = CliRunner().invoke(app, ["separate", str(good), "--out", str(tmp_path / "s1"),
                                        "--threads", "1", "--shifts", "1"])
    assert one_pass.exit_code == 0, one_pass.output
    vocals1, _ = sf.read(tmp_path / "s1" / "song one.vocals.wav")
    assert len(vocals1) == len(vocals) and not np.allclose(vocals1, vocals)


def test_separate_with_the_repet_sim_baseline(tmp_path):
    rng = np.random.default_rng(0)
    song = tmp_path / "x.flac"
    sf.write(song, (0.1 * rng.standard_normal(6 * SR)).astype(np.float32), SR)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["separate", str(song), "--out", str(out),
                                      "--model", "repet_sim", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "x.vocals.wav").exists() and (out / "x.accompaniment.wav").exists()


def test_a_file_louder_than_full_scale_gets_float_stems_not_clipped_ones(tmp_path,
                                                                         monkeypatch):
    _tiny_weights(tmp_path, monkeypatch)
    rng = np.random.default_rng(0)
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    mixture = (4.0 * rng.standard_normal(2 * SR)).astype(np.float32)
    sf.write(loud, mixture, SR, subtype="FLOAT")
    sf.write(quiet, mixture / 8, SR)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["separate", str(loud), str(quiet), "--out", str(out),
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "louder than full scale" in result.output
    vocals, _ = sf.read(out / "loud.vocals.wav", dtype="float32")
    accompaniment, _ = sf.read(out / "loud.accompaniment.wav", dtype="float32")
    assert sf.info(out / "loud.vocals.wav").subtype == "FLOAT"
    np.testing.assert_allclose(vocals + accompaniment, mixture, atol=1e-4)  # nothing clipped
    assert sf.info(out / "quiet.vocals.wav").subtype == "PCM_16"


def test_default_weights_are_the_better_on_validation(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    for name, val in [("bsrnn-cpu", 3.0), ("bsrnn-cpu-semi", 4.5)]:
        BSRNN(BSRNNConfig.named("tiny")).save(weights / f"{name}.safetensors", version=name,
                                              val_sdr=val)
    monkeypatch.setattr(bsrnn, "WEIGHTS_DIR", weights)
    assert bsrnn.load_pretrained().version.startswith("bsrnn-cpu-semi-")
    assert bsrnn.load_pretrained("bsrnn-cpu").version.startswith("bsrnn-cpu-")
    (weights / "bsrnn-cpu-semi.json").unlink()
    assert not bsrnn.load_pretrained().version.startswith("bsrnn-cpu-semi")


def test_version_changes_when_the_weights_are_retrained(tmp_path):
    path = tmp_path / "bsrnn-cpu.safetensors"
    torch.manual_seed(0)
    BSRNN(BSRNNConfig.named("tiny")).save(path, version="bsrnn-cpu-1", val_sdr=1.0)
    first = bsrnn.BsrnnSeparator.from_file(path).version
    torch.manual_seed(1)
    BSRNN(BSRNNConfig.named("tiny")).save(path, version="bsrnn-cpu-1", val_sdr=1.0)
    second = bsrnn.BsrnnSeparator.from_file(path).version
    assert first.startswith("bsrnn-cpu-1-") and second.startswith("bsrnn-cpu-1-")
    assert first != second


def test_train_separator_grows_the_init_weights(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    init = tmp_path / "init.safetensors"
    BSRNN(BSRNNConfig.named("tiny")).save(init, version="bsrnn-tiny-test", val_sdr=0.0)
    base = ["train", "separator", "--data", str(tiny_corpus), "--epochs", "1", "--steps", "1",
            "--batch", "1", "--val-songs", "1", "--threads", "1"]
    result = CliRunner().invoke(app, [*base, "--add-modules", "2", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "--init" in result.output
    out = tmp_path / "b"
    result = CliRunner().invoke(app, [*base, "--init", str(init), "--add-modules", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    grown, _ = BSRNN.load(out / "best.safetensors")
    assert grown.config.modules == BSRNNConfig.named("tiny").modules + 2


def test_train_separator_adds_an_extra_corpus_without_test_singers_or_tunes(tiny_corpus,
                                                                            tmp_path):
    from recsys.corpus import Corpus

    extra = tmp_path / "extra"
    shutil.copytree(tiny_corpus, extra)
    rows = [json.loads(line) for line in (extra / "songs.jsonl").read_text().splitlines()]
    for r in rows[1:]:
        r["tune_id"] = "x" + r["tune_id"]  # new tunes, except the first song's
    (extra / "songs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main = Corpus(tiny_corpus)
    test_singers = {s.singer_id for s in main.singers("test")}
    joining = [r for r in rows[1:] if r["singer_id"] not in test_singers]
    assert 0 < len(joining) < len(rows) - 1  # the test singer's songs stay out
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "separator", "--data", str(tiny_corpus), "--extra", str(extra), "--epochs",
        "1", "--steps", "1", "--batch", "1", "--val-songs", "1", "--threads", "1",
        "--config", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "best.json").read_text())
    assert meta["extra_songs"] == len(joining) and meta["extra"] == [str(extra)]
    assert not test_singers & set(meta["heard_singers"])
    assert f"{len(main.songs('train')) + len(joining)} songs" in result.output


def test_benches_take_candidate_weights_by_path(tmp_path):
    from recsys.bench.vocals import resolve_separator

    torch.manual_seed(0)
    path = tmp_path / "run" / "best.safetensors"
    BSRNN(BSRNNConfig.named("tiny")).save(path, version="bsrnn-candidate", val_sdr=1.0)
    label, sep = resolve_separator(str(path))
    assert label.startswith("bsrnn-candidate-")  # the weights' digest keeps caches apart
    mixture = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    vocals, accompaniment = sep.separate(mixture)
    assert vocals.shape == accompaniment.shape == mixture.shape

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    broken.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    for bad, message in ((tmp_path / "missing.safetensors", "no BSRNN weights"),
                         (broken, "could not be loaded")):
        result = CliRunner().invoke(app, ["bench", "qbh", "--corpus", str(tmp_path / "c"),
                                          "--separator", str(bad)])
        assert result.exit_code == 2, result.output  # the CLI's usage-error code
        assert message in result.output and "Traceback" not in result.output


def test_a_separator_name_takes_a_shifts_suffix(tmp_path):
    import pytest
    import typer

    from recsys.bench.vocals import resolve_separator
    from recsys.commands import separator_option

    path = tmp_path / "best.safetensors"
    BSRNN(BSRNNConfig.named("tiny")).save(path, version="bsrnn-candidate", val_sdr=1.0)
    plain, sep = resolve_separator(f"{path},shifts=1,precision=fp32")
    assert sep.shifts == 1 and sep.precision == "fp32"
    label, sep = resolve_separator(f"{path},shifts=2,precision=fp32")
    assert sep.shifts == 2 and label == f"{plain}-shifts2"  # its own cache folder
    label, sep = resolve_separator(f"{path},precision=bf16,shifts=1")
    assert sep.precision == "bf16" and label == f"{plain}-bf16"
    _, sep = resolve_separator(str(path))  # a candidate runs as the shipped weights do
    assert sep.shifts == bsrnn.DEFAULT_SHIFTS
    assert sep.precision == bsrnn.resolve_precision(bsrnn.DEFAULT_PRECISION, "cpu")
    for bad in (f"{path},shifts=two", f"{path},shifts=0", "repet_sim,shifts=2"):
        with pytest.raises(typer.BadParameter, match="shifts"):
            separator_option(bad)
    with pytest.raises(typer.BadParameter, match="precision is one of"):
        separator_option(f"{path},precision=fp16")


def test_a_separator_that_does_not_load_is_a_usage_error(tmp_path):
    import pytest
    import typer

    from recsys.commands import separator_option

    for name in ("no-such-separator", str(tmp_path / "missing.safetensors")):
        with pytest.raises(typer.BadParameter, match="separator could be loaded|no BSRNN weights"):
            separator_option(name)
    assert separator_option("clean") == ("clean", None)


def test_separate_refuses_clashing_names_a_file_as_out_and_an_unknown_device(tmp_path):
    song = tmp_path / "a" / "song.wav"
    other = tmp_path / "b" / "song.flac"
    for path in (song, other):
        path.parent.mkdir()
        sf.write(path, np.zeros(SR, np.float32), SR)
    out = tmp_path / "out"
    runs = [
        (["separate", str(song), str(other), "--out", str(out), "--model", "mixture"],
         "would both write song.vocals.wav"),
        (["separate", str(song), "--out", str(song), "--model", "mixture"], "is a file"),
        (["separate", str(song), "--out", str(out), "--device", "gpu"], "unknown device"),
        (["separate", str(song), "--out", str(out), "--model", "repet_sim", "--shifts", "3"],
         "bsrnn model only"),
        (["separate", str(song), "--out", str(out), "--precision", "fp16"],
         "--precision is one of"),
    ]
    for args, message in runs:
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert not out.exists()


def test_train_separator_refuses_options_that_cannot_apply(tmp_path):
    weights = tmp_path / "w.safetensors"
    BSRNN(BSRNNConfig.named("tiny")).save(weights, version="t")
    base = ["train", "separator", "--data", str(tmp_path / "corpus"), "--out", str(tmp_path)]
    runs = [
        (["--init", str(weights), "--config", "paper"], "keep theirs"),
        (["--resume"], "no " + str(tmp_path / "last.pt")),
        (["--ship", "../escape"], "plain name"),
        (["--init", str(tmp_path / "missing.safetensors")], "does not exist"),  # before data
        (["--batch", "0"], "--batch"),
    ]
    for args, message in runs:
        result = CliRunner().invoke(app, [*base, *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_the_separator_takes_inputs_shorter_than_one_stft_window():
    sep = bsrnn.BsrnnSeparator(BSRNN(BSRNNConfig.named("tiny")), device="cpu")
    for n in (0, 100, 1023):
        mixture = np.full(n, 0.1, np.float32)
        vocals, accompaniment = sep.separate(mixture)
        assert vocals.shape == accompaniment.shape == (n,)
        assert np.allclose(vocals + accompaniment, mixture)


def test_songs_to_score_keeps_unheard_tunes_and_the_asked_singers():
    from types import SimpleNamespace

    import pytest

    from recsys.bench.separation import songs_to_score

    def song(song_id, singer, tune, instrumental=False):
        return SimpleNamespace(song_id=song_id, singer_id=singer, tune_id=tune,
                               instrumental=instrumental)

    songs = [song("a", "heard", "t1"), song("b", "new", "t2"), song("c", "new", "seen-tune"),
             song("d", None, "t3", instrumental=True), song("e", "heard", "t4")]
    ids = {singers: [s.song_id for s in songs_to_score(songs, "all", singers, {"heard"},
                                                       {"seen-tune"})]
           for singers in ("all", "heard", "unseen")}
    assert ids == {"all": ["a", "b", "e"], "heard": ["a", "e"], "unseen": ["b"]}
    # on test a heard singer is never scored, whatever is asked
    assert [s.song_id for s in songs_to_score(songs, "test", "all", {"heard"}, set())] == ["b", "c"]
    with pytest.raises(ValueError, match="singers is one of"):
        songs_to_score(songs, "all", "everyone", set(), set())


def test_separation_bench_scores_candidate_weights_on_unheard_singers(tiny_corpus, tmp_path,
                                                                     monkeypatch):
    from recsys.bench import separation
    from recsys.corpus import Corpus

    sung = [s for s in Corpus(tiny_corpus).songs() if not s.instrumental]
    heard = {sung[0].singer_id}
    unheard = [s for s in sung if s.singer_id not in heard]
    # the shipped weights' metadata names what they heard; here: one singer, no tune
    monkeypatch.setattr(separation, "heard_singers", lambda: heard)
    monkeypatch.setattr(separation, "heard_tunes", lambda: set())
    torch.manual_seed(0)
    path = tmp_path / "run" / "best.safetensors"
    BSRNN(BSRNNConfig.named("tiny")).save(path, version="bsrnn-candidate", val_sdr=1.0)

    result = separation.run(tiny_corpus, split="all", max_songs=1, long_minutes=0.02,
                            threads=1, separator=path, singers="unseen", shifts=(1,),
                            precision="fp32")
    assert result.n_items == 1 and unheard
    assert result.notes["bsrnn"].startswith(f"candidate weights {path} (bsrnn-candidate-")
    assert result.notes["singers"] == "unseen"
    assert result.notes["inference"].startswith(
        f"bsrnn: {bsrnn.DEFAULT_SHIFTS} passes, fp32, bsrnn_shifts1: 1 pass, fp32")
    assert {"bsrnn", "bsrnn_shifts1", "oracle_irm", "mixture"} <= set(result.systems)
    assert result.systems["bsrnn"]["realtime_factor"] > 0
    assert result.systems["bsrnn_shifts1"]["peak_mem_mb"] > 0
    assert result.systems["bsrnn_shifts1"]["vocals_sdr"] != result.systems["bsrnn"]["vocals_sdr"]

    bad = CliRunner().invoke(app, ["bench", "separation", "--corpus", str(tiny_corpus),
                                   "--split", "all", "--separator",
                                   str(tmp_path / "missing.safetensors")])
    assert bad.exit_code == 2 and "no BSRNN weights" in bad.output, bad.output
    assert "Traceback" not in bad.output
