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
