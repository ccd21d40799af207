"""Band split, mask application, the model's shapes, save/load and chunked inference."""

import numpy as np
import pytest
import torch

from embeddings.base import Separator
from embeddings.separation.bandsplit import apply_mask, band_widths, merge_bands
from embeddings.separation.baselines import MixtureAsEstimate, RepetSim, oracle_irm
from embeddings.separation.bsrnn import (
    BSRNN,
    BSRNNConfig,
    BsrnnSeparator,
    cpu_has_bf16,
    resolve_precision,
)
from embeddings.separation.infer import chunk_starts, overlap_add

SR = 16000


@pytest.mark.parametrize("n_fft", [512, 1024, 2048])
def test_band_split_covers_every_bin_once(n_fft):
    widths = band_widths(n_fft, SR)
    assert sum(widths) == n_fft // 2 + 1
    assert all(w > 0 for w in widths)
    # the bands are contiguous, so the bin -> band map is a partition of the bins
    owner = np.repeat(np.arange(len(widths)), widths)
    assert len(owner) == n_fft // 2 + 1 and np.all(np.diff(owner) >= 0)


def test_band_split_follows_the_vocal_scheme():
    widths = band_widths(1024, SR)
    # 10 bands of 100 Hz below 1 kHz, 12 of 250 Hz to 4 kHz, 8 of 500 Hz to 8 kHz
    assert len(widths) == 30
    hz = 16000 / 1024
    assert abs(sum(widths[:10]) * hz - 1000) < 2 * hz
    assert abs(widths[15] * hz - 250) < hz and abs(widths[25] * hz - 500) < hz


def test_identity_mask_reconstructs_the_input():
    model = BSRNN(BSRNNConfig.named("tiny"))
    x = torch.randn(2, 3 * SR) * 0.1
    spec = model.stft(x)
    ones = [torch.stack([torch.ones(2, w, spec.shape[2]), torch.zeros(2, w, spec.shape[2])], -1)
            for w in model.widths]
    y = model.istft(apply_mask(spec, merge_bands(ones)), x.shape[-1])
    assert torch.allclose(y, x, atol=1e-5)


def test_model_shapes_and_save_load(tmp_path):
    model = BSRNN(BSRNNConfig.named("tiny")).eval()
    x = torch.randn(2, SR) * 0.1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    model.save(tmp_path / "m.safetensors", version="tiny-1")
    loaded, doc = BSRNN.load(tmp_path / "m.safetensors")
    assert doc["version"] == "tiny-1"
    with torch.no_grad():
        assert torch.allclose(loaded(x), y, atol=1e-6)


def test_grown_model_separates_as_the_original_until_trained():
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.named("tiny")).eval()
    deeper = model.grown(2).eval()
    assert deeper.config.modules == model.config.modules + 2
    x = torch.randn(2, SR) * 0.1
    with torch.no_grad():
        assert torch.allclose(deeper(x), model(x), atol=1e-6)
    # the new modules learn: their output layers get gradients though they start at zero
    deeper.train()
    deeper(x).pow(2).mean().backward()
    assert deeper.blocks[-1].time_rnn.fc.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        model.grown(-1)


def test_chunk_starts_cover_the_signal():
    for length in [100, 1000, 1001, 12345]:
        starts = chunk_starts(length, 400, 100)
        assert starts[0] == 0 and starts[-1] + 400 >= length
        assert starts[-1] + 100 < length or len(starts) == 1


def test_overlap_add_equals_whole_file_for_a_local_separator():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_000).astype(np.float32)

    def fn(piece):  # a per-sample operation: chunking must not change it at all
        return np.stack([0.3 * piece, piece - 0.3 * piece])

    out = overlap_add(fn, x, chunk=7000, overlap=1500)
    assert out.shape == (2, len(x))
    np.testing.assert_allclose(out, fn(x), atol=1e-6)
    batched = overlap_add(fn, x, chunk=7000, overlap=1500, batch=3,
                          batch_fn=lambda pieces: np.stack([fn(p) for p in pieces]))
    np.testing.assert_allclose(batched, fn(x), atol=1e-6)


def test_chunked_bsrnn_matches_whole_file_within_tolerance():
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.named("tiny"))
    sep = BsrnnSeparator(model, device="cpu", chunk_seconds=4.0, overlap_seconds=1.0,
                         precision="fp32")
    rng = np.random.default_rng(1)
    t = np.arange(12 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(
        np.float32)
    vocals, accompaniment = sep.separate(x)
    whole = sep.separate_chunk(x)
    assert vocals.shape == x.shape
    np.testing.assert_allclose(vocals + accompaniment, x, atol=1e-5)
    err = np.sum((vocals - whole[0]) ** 2) / np.sum(whole[0] ** 2)
    assert err < 0.05  # the BLSTMs see less context per chunk; the result must stay close


def test_shifted_passes_average_the_vocals_of_delayed_inputs():
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.named("tiny"))
    hop = model.config.hop
    x = (0.3 * np.sin(2 * np.pi * 330 * np.arange(3 * SR) / SR)).astype(np.float32)
    plain = BsrnnSeparator(model, device="cpu", precision="fp32")
    shifted = BsrnnSeparator(model, device="cpu", shifts=2, precision="fp32")
    assert shifted.version == f"{plain.version}-shifts2"

    def vocals_delayed_by(d):  # one pass of the model on x delayed by d samples, cut back
        padded = np.pad(x, (d, hop - d))
        return plain.separate_chunk(padded)[0][d : d + len(x)]

    out = shifted.separate_chunk(x)
    expected = (vocals_delayed_by(0) + vocals_delayed_by(hop // 2)) / 2
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    np.testing.assert_allclose(out[0] + out[1], x, atol=1e-6)
    assert not np.allclose(out[0], plain.separate_chunk(x)[0], atol=1e-4)
    # batched chunks give what one chunk at a time gives
    pieces = np.stack([x[: 2 * SR], x[SR:]])
    batch = shifted.separate_batch(pieces)
    np.testing.assert_allclose(batch[1], shifted.separate_chunk(pieces[1]), atol=1e-5)
    with pytest.raises(ValueError, match="shifts must be in"):
        BsrnnSeparator(model, device="cpu", shifts=hop + 1)


def test_bfloat16_separates_close_to_float32():
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig(features=16, modules=2, hidden=16, mask_hidden=32))
    fp32 = BsrnnSeparator(model, device="cpu", precision="fp32")
    bf16 = BsrnnSeparator(model, device="cpu", precision="bf16")
    assert bf16.version == f"{fp32.version}-bf16"  # other audio: its own cache folder
    rng = np.random.default_rng(4)
    x = (0.3 * np.sin(2 * np.pi * 250 * np.arange(5 * SR) / SR)
         + 0.05 * rng.standard_normal(5 * SR)).astype(np.float32)
    a, b = fp32.separate(x), bf16.separate(x)
    assert not np.array_equal(a[0], b[0])  # it did run in bfloat16
    assert np.sum((a[0] - b[0]) ** 2) / np.sum(a[0] ** 2) < 1e-3  # within -30 dB
    np.testing.assert_allclose(b[0] + b[1], x, atol=1e-5)  # the accompaniment is the rest
    expected = "bf16" if cpu_has_bf16() else "fp32"
    assert BsrnnSeparator(model, device="cpu", precision="auto").precision == expected
    assert BsrnnSeparator(model, device="cpu").precision == "fp32"  # the default
    assert resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision is one of"):
        BsrnnSeparator(model, device="cpu", precision="fp16")


def test_chunk_overlap_covers_the_stft_edge():
    model = BSRNN(BSRNNConfig.named("tiny"))
    c = model.config
    sep = BsrnnSeparator(model, device="cpu", chunk_seconds=0.01, overlap_seconds=0.0)
    assert sep.overlap >= c.n_fft // 2 and sep.overlap % c.hop == 0
    assert sep.chunk > sep.overlap and sep.chunk % c.hop == 0


def test_baselines_implement_the_protocol():
    rng = np.random.default_rng(2)
    x = (0.1 * rng.standard_normal(8 * SR)).astype(np.float32)
    for sep in [MixtureAsEstimate(), RepetSim()]:
        assert isinstance(sep, Separator)
        v, a = sep.separate(x)
        assert v.shape == a.shape == x.shape and np.isfinite(v).all()
    v, a = MixtureAsEstimate().separate(x)
    np.testing.assert_array_equal(v, x)


def test_repet_sim_puts_a_repeating_loop_in_the_accompaniment():
    rng = np.random.default_rng(3)
    loop = (0.2 * rng.standard_normal(SR // 2)).astype(np.float32)
    accompaniment = np.tile(loop, 16)
    t = np.arange(len(accompaniment)) / SR
    voice = (0.2 * np.sin(2 * np.pi * (300 + 100 * np.sin(2 * np.pi * 0.3 * t)) * t)).astype(
        np.float32)
    voice[: 2 * SR] = 0
    v, a = RepetSim().separate(accompaniment + voice)
    # the estimated accompaniment correlates more with the loop than the vocals estimate does
    assert np.dot(a, accompaniment) > np.dot(v, accompaniment)


def test_oracle_irm_is_near_perfect_on_disjoint_spectra():
    t = np.arange(4 * SR) / SR
    v = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    a = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    ev, ea = oracle_irm(v + a, v, a)
    assert np.mean((ev - v) ** 2) < 1e-3 * np.mean(v**2)
    assert np.mean((ea - a) ** 2) < 1e-3 * np.mean(a**2)


def test_si_sdr_ignores_scale_and_penalises_noise():
    from recsys.bench.separation import si_sdr

    rng = np.random.default_rng(4)
    ref = rng.standard_normal(SR)
    assert si_sdr(ref, 0.3 * ref) > 60
    assert abs(si_sdr(ref, ref + rng.standard_normal(SR))) < 1.0  # equal-power noise: ~0 dB


def test_streamed_separation_needs_less_memory_than_whole_outputs(tmp_path):
    import soundfile as sf

    from recsys.bench.separation import peak_memory_mb

    rng = np.random.default_rng(3)
    sf.write(tmp_path / "mix.wav", (0.1 * rng.standard_normal(5 * SR)).astype(np.float32), SR)
    memory = peak_memory_mb("bsrnn", tmp_path / "mix.wav", 3.0, 1)
    # 3 min at 16 kHz: the two float32 outputs alone are 23 MB, streaming holds one segment
    assert 0 <= memory["stream_peak_mb"] < memory["peak_mb"]
