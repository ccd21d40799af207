"""The learned pitch tracker: front-end, decoding, block processing, training, CLI."""

import json

import numpy as np
import pytest
import torch
from melody_synth import sing, tune
from test_melody_train_cli import _corpus
from typer.testing import CliRunner

from embeddings import pitch
from embeddings.pitch_net import (
    HarmonicSpectrogram,
    PitchModelError,
    PitchNet,
    PitchNetConfig,
    PitchTracker,
    decode,
    for_inference,
)
from embeddings.pitch_train import (
    CropSampler,
    PitchItem,
    PitchTrainConfig,
    PitchValidation,
    train,
)
from recsys.cli import app

TINY = PitchNetConfig(channels=4, layers=2)


def test_harmonic_channels_put_a_tone_on_its_grid_bin():
    c = PitchNetConfig()
    t = np.arange(16000) / 16000
    tone = torch.from_numpy(np.sin(2 * np.pi * 261.63 * t).astype(np.float32))[None]  # C4
    spec = HarmonicSpectrogram(c)(tone)[0].mean(dim=1)  # (harmonics, bins)
    midi = c.bin_midi()
    # channel h reads h * f0: a tone at 60 peaks at grid pitch 60 - 12 * log2(h)
    for k, h in enumerate(c.harmonics):
        expected = 60 - 12 * np.log2(h)
        if c.midi_min <= expected <= c.midi_max:
            assert abs(midi[int(spec[k].argmax())] - expected) < 0.5


def test_classes_and_decoding_round_trip():
    c = PitchNetConfig()
    midi = np.array([np.nan, 40.0, 60.0, 61.34, np.nan, 85.0], dtype=np.float32)
    classes = c.midi_to_class(midi)
    assert classes[0] == 0 and classes[4] == 0 and (classes[[1, 2, 3, 5]] > 0).all()
    logits = torch.full((len(midi), 1 + c.bins), -20.0)
    logits[torch.arange(len(midi)), torch.from_numpy(classes)] = 20.0
    out = decode(logits, c)
    assert np.isnan(out[[0, 4]]).all()
    assert np.allclose(out[[1, 2, 3, 5]], midi[[1, 2, 3, 5]], atol=1 / 6)


def test_blocks_equal_a_whole_file_pass():
    torch.manual_seed(0)
    model = PitchNet(TINY).eval()
    audio = sing(tune(20, seed=1), seed=1)
    whole = PitchTracker(model, "t", block_seconds=60.0)(audio)
    blocks = PitchTracker(model, "t", block_seconds=1.0, context_seconds=0.5)(audio)
    assert len(whole) == len(blocks) == pitch.n_frames(len(audio))
    both = np.isfinite(whole) & np.isfinite(blocks)
    assert (np.isfinite(whole) == np.isfinite(blocks)).mean() > 0.99
    assert np.allclose(whole[both], blocks[both], atol=1e-3)
    assert len(PitchTracker(model, "t")(np.zeros(100, np.float32))) == pitch.n_frames(100)


def test_inference_copy_folds_batch_norm_without_changing_the_output():
    torch.manual_seed(0)
    model = PitchNet(TINY)
    model.train()
    model(torch.randn(4, 16000))  # give the batch norms running statistics
    model.eval()
    x = torch.from_numpy(sing(tune(8, seed=2), seed=2))[None]
    fused = for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.body)
    with torch.no_grad():
        assert torch.allclose(model(x), fused(x), atol=1e-4)


def test_training_learns_sung_pitch():
    items = []
    for s in range(6):
        notes = tune(24, seed=s, base=55 + 2 * s)
        items.append(PitchItem(sing(notes, seed=s), notes, "clean"))
    config = PitchTrainConfig(steps=60, batch=8, lr=1e-2, lr_final=1e-3, eval_every=30,
                              noise_prob=0.0)
    val = PitchValidation(items[-1:])
    model, history = train(items[:-1], PitchNetConfig(channels=8, layers=2), config,
                           evaluate=val)
    assert np.mean(history.loss[-10:]) < 0.7 * np.mean(history.loss[:5])
    assert history.eval_steps == [30, 60]
    assert val(model)["clean_raw_pitch_accuracy"] > 0.5


def test_a_shifted_crop_moves_its_target_with_its_pitch():
    c = PitchNetConfig()
    notes = tune(16, seed=3, base=60)
    audio = sing(notes, seed=3)
    plain = CropSampler([PitchItem(audio, notes, "clean")], c, PitchTrainConfig(noise_prob=0.0))
    shifted = CropSampler([PitchItem(audio, notes, "clean")], c,
                          PitchTrainConfig(noise_prob=0.0, shift_prob=1.0, gain_db=0.0))
    x, y = plain._one()
    assert len(x) == plain.samples and len(y) == plain.frames
    moved = 0
    for _ in range(6):
        x, y = shifted._one()
        assert len(x) == shifted.samples and len(y) == shifted.frames
        heard = pitch.contour(x, "yin")[: len(y)]
        target = np.where(y > 0, c.bin_midi()[np.maximum(y - 1, 0)], np.nan)
        both = np.isfinite(heard) & np.isfinite(target)
        assert both.mean() > 0.3
        # the sound and the target agree to within a bin, whatever the shift drawn
        assert np.median(np.abs(heard[both] - target[both])) < 1 / 3
        moved += np.any(np.abs(target[both] - np.round(target[both])) > 0.1)
    assert moved  # the tune's notes are whole semitones: some draws moved off them


def test_missing_weights_say_how_to_train(tmp_path):
    with pytest.raises(PitchModelError, match="recsys train pitch"):
        PitchNet.load(tmp_path / "nothing")


def test_shipped_tracker_follows_a_sung_tune_and_calls_silence_unvoiced():
    notes = tune(30, seed=5, base=57)
    audio = sing(notes, seed=5)
    est = pitch.contour(audio, "cnn")
    scores = pitch.raw_pitch_accuracy(est, pitch.notes_to_contour(notes, len(est)))
    # (the synthetic notes' 40 ms gaps still ring, so voicing false alarms are not scored)
    assert scores["raw_pitch_accuracy"] > 0.9 and scores["voicing_recall"] > 0.9
    noise = (0.01 * np.random.default_rng(0).standard_normal(5 * 16000)).astype(np.float32)
    assert np.isfinite(pitch.contour(noise, "cnn")).mean() < 0.1


def test_train_pitch_cli_selects_on_val(tmp_path):
    corpus = tmp_path / "corpus"
    _corpus(corpus)
    out = tmp_path / "w" / "pitch-test"
    result = CliRunner().invoke(app, [
        "train", "pitch", "--data", str(corpus), "--out", str(out), "--separator", "repet_sim",
        "--steps", "4", "--eval-every", "2", "--batch", "4", "--channels", "4",
        "--layers", "2", "--hums-per-song", "1", "--hum-cache", str(tmp_path / "hums"),
        "--cache", str(tmp_path / "cache"),
    ])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.with_suffix(".json").read_text())
    meta = doc["meta"]
    assert meta["train_items"] == {"clean": 2, "separated": 2, "hum": 2}
    assert meta["val"]["best_step"] in (2, 4) and meta["history"]["eval_steps"] == [2, 4]
    assert {"separated_overall_accuracy", "clean_overall_accuracy"} <= set(meta["val"]["best"])
    assert PitchNet.load(out).config.channels == 4


def test_train_pitch_cli_adds_an_extension_corpus_train_songs(tmp_path):
    corpus, extra = tmp_path / "corpus", tmp_path / "extra"
    _corpus(corpus)
    _corpus(extra)
    rows = [json.loads(line) for line in (extra / "songs.jsonl").read_text().splitlines()]
    rows[1]["tune_id"] = "t1"  # set to a main-corpus tune: left out
    for r in rows[:1] + rows[2:]:
        r["tune_id"] = "x" + r["tune_id"]
    (extra / "songs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "w" / "pitch-test"
    result = CliRunner().invoke(app, [
        "train", "pitch", "--data", str(corpus), "--extra", str(extra), "--out", str(out),
        "--separator", "repet_sim", "--steps", "2", "--eval-every", "2", "--batch", "4",
        "--channels", "4", "--layers", "2", "--hums-per-song", "0",
        "--cache", str(tmp_path / "cache"),
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())["meta"]
    assert meta["train_items"] == {"clean": 3, "separated": 3, "hum": 0}
    assert meta["extra"] == {str(extra.resolve()): 1}


def test_pitch_tracker_setting_reaches_the_melody_encoder(tmp_path):
    from embeddings.registry import UnknownModelError
    from recsys.pipeline import PITCH_CONTOUR, Models
    from recsys.settings import Settings

    models = Models.load(Settings(data_dir=tmp_path, pitch_tracker="cnn"))
    assert models.melody.pitch_method == "cnn"
    assert models.versions[PITCH_CONTOUR].startswith("pitch-cnn-")
    with pytest.raises(UnknownModelError, match="pitch tracker 'nope'"):
        Models.load(Settings(data_dir=tmp_path, pitch_tracker="nope"))
