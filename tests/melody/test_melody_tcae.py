import numpy as np
import pytest
import torch
from melody_synth import sing, tune

from embeddings.base import MelodyEncoder
from embeddings.melody import (
    TCAE,
    ContourBaseline,
    MelodyModelError,
    TCAEConfig,
    TCAEMelodyEncoder,
    load_pretrained,
)
from embeddings.windows import WINDOW_SAMPLES, cut

TINY = TCAEConfig(channels=16, latent=32, layers=4)


def test_encoder_and_decoder_are_causal():
    torch.manual_seed(0)
    model = TCAE(TINY).eval()
    x = torch.randn(2, TINY.n_mels, 120)
    t = 70
    y = x.clone()
    y[..., t + 1 :] = torch.randn_like(y[..., t + 1 :]) * 5
    with torch.no_grad():
        zx, rx = model(x)
        zy, ry = model(y)
    assert torch.equal(zx[..., : t + 1], zy[..., : t + 1])
    assert torch.equal(rx[..., : t + 1], ry[..., : t + 1])
    assert not torch.allclose(zx[..., t + 1 :], zy[..., t + 1 :])
    # and the past does reach the present, over the whole receptive field
    w = x.clone()
    w[..., t - TINY.receptive_field + 1] += 3
    with torch.no_grad():
        zw, _ = model(w)
    assert not torch.allclose(zw[..., t], zx[..., t])


def test_shapes_and_features():
    model = TCAE(TINY)
    wave = torch.randn(3, WINDOW_SAMPLES)
    mel = model.features(wave)
    assert mel.shape == (3, 48, WINDOW_SAMPLES // 256 + 1)
    z, rec = model(mel)
    assert z.shape == (3, 32, mel.shape[-1]) and rec.shape == mel.shape
    assert model.pool(z).shape == (3, 32)


def test_save_load_roundtrip_and_encoder_interface(tmp_path):
    torch.manual_seed(1)
    model = TCAE(TINY)
    model.save(tmp_path / "tcae-test", meta={"steps": 0})
    encoder = load_pretrained(tmp_path / "tcae-test", device="cpu")
    assert isinstance(encoder, MelodyEncoder)
    assert encoder.dim == 32 and encoder.version.startswith("tcae-")
    windows = cut(sing(tune(12, seed=3))).audio
    emb = encoder.embed(windows)
    assert emb.shape == (len(windows), 32) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    direct = TCAEMelodyEncoder(model.eval(), "x", device="cpu").embed(windows)
    assert np.allclose(emb, direct, atol=1e-5)


def test_missing_or_mismatched_weights_are_clear_errors(tmp_path):
    with pytest.raises(MelodyModelError, match="recsys train melody"):
        load_pretrained(tmp_path / "nothing")
    TCAE(TINY).save(tmp_path / "m")
    doc = (tmp_path / "m.json").read_text().replace('"latent": 32', '"latent": 64')
    (tmp_path / "m.json").write_text(doc)
    with pytest.raises(MelodyModelError, match="does not match"):
        load_pretrained(tmp_path / "m")


def test_embed_rejects_wrong_window_shape():
    with pytest.raises(ValueError, match="windows of shape"):
        ContourBaseline().embed(np.zeros((2, 1000), dtype=np.float32))


def test_contour_baseline_is_key_invariant():
    base = ContourBaseline()
    assert isinstance(base, MelodyEncoder)
    notes = tune(8, seed=5, note_s=0.35)
    up = [(a, b, m + 4) for a, b, m in notes]
    other = tune(8, seed=6, note_s=0.35)
    windows = np.stack([cut(sing(n)).audio[0] for n in (notes, up, other)])
    emb = base.embed(windows)
    assert emb.shape == (3, base.dim)
    assert emb[0] @ emb[1] > 0.95
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.1
    assert not np.any(base.embed(np.zeros((1, WINDOW_SAMPLES), dtype=np.float32)))


INTERVAL = TCAEConfig(channels=16, latent=32, layers=4, frontend="interval", lags=(2, 4, 8))


def test_interval_frontend_is_causal_over_its_whole_receptive_field():
    torch.manual_seed(0)
    model = TCAE(INTERVAL).eval()
    x = torch.randn(2, INTERVAL.n_mels, 120)
    t = 100
    y = x.clone()
    y[..., t + 1 :] = torch.randn_like(y[..., t + 1 :]) * 5
    with torch.no_grad():
        zx, rx = model(x)
        zy, ry = model(y)
    assert rx.shape == (2, INTERVAL.stack_input, 120)
    assert torch.equal(zx[..., : t + 1], zy[..., : t + 1])
    assert torch.equal(rx[..., : t + 1], ry[..., : t + 1])
    # the oldest frame of the receptive field reaches frame t, the one before it does not
    x.requires_grad_(True)
    z, _ = model(x)
    (grad,) = torch.autograd.grad(z[..., t].sum(), x)
    seen = grad.abs().sum(dim=(0, 1))
    assert seen[t - INTERVAL.receptive_field + 1] > 0
    assert seen[: t - INTERVAL.receptive_field + 1].abs().sum() == 0


def test_interval_layer_is_transposition_invariant_and_reads_the_interval():
    from embeddings.melody import IntervalLayer

    post = torch.zeros(1, 48, 40)
    post[0, 10, :20] = 1.0  # a note, then one 4 semitones higher
    post[0, 14, 20:] = 1.0
    layer = IntervalLayer((4,), 12)
    out = layer(post)
    assert out.shape == (1, 25, 40)
    assert torch.equal(out, layer(torch.roll(post, 7, dims=1)))
    assert out[0, :, 22].argmax() == 12 + 4  # 4 frames back the pitch was 4 semitones lower
    assert out[0, :, 30].argmax() == 12  # same note held
    assert out[0, :, 2].abs().sum() == 0  # before the window: unvoiced


def test_embedding_ignores_transposition_of_a_pure_pitch_posterior():
    """With a one-hot pitch front-end, a transposed tune embeds exactly the same."""
    torch.manual_seed(2)
    model = TCAE(INTERVAL).eval()
    bins = torch.tensor([5, 5, 9, 9, 7, 12, 12, 10] * 6)
    post = torch.nn.functional.one_hot(bins, 48).T[None].float()
    up = torch.roll(post, 3, dims=1)
    with torch.no_grad():
        a = model.pool(model.encoder(model.intervals(post)))
        b = model.pool(model.encoder(model.intervals(up)))
    assert torch.allclose(a, b)


def test_unknown_frontend_and_old_configs():
    with pytest.raises(MelodyModelError, match="front-end"):
        TCAEConfig(frontend="cqt")
    # v1 weights' JSON has no front-end fields: they load as the mel front-end
    assert TCAEConfig(**{"n_mels": 48, "channels": 8}).frontend == "mel"


def test_interval_model_save_load_roundtrip(tmp_path):
    torch.manual_seed(3)
    model = TCAE(INTERVAL)
    model.save(tmp_path / "tcae-int")
    encoder = load_pretrained(tmp_path / "tcae-int", device="cpu")
    assert encoder.model.config == INTERVAL
    windows = cut(sing(tune(12, seed=4))).audio
    direct = TCAEMelodyEncoder(model.eval(), "x", device="cpu").embed(windows)
    assert np.allclose(encoder.embed(windows), direct, atol=1e-5)
