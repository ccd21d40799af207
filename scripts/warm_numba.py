"""Compile librosa's disk-cached numba kernels once, in one process, at install time.

librosa caches its numba kernels in its own ``__pycache__``. When two processes compile
the same kernel at once (two ingest workers, a bench beside the server), they can leave a
corrupt cache behind, and every later call of that kernel (YIN's ``localmin`` first) then
crashes the process with a segmentation fault. Compiled here first, later processes only
read the cache, which is safe to share. Calls every librosa routine the project uses that
may reach a cached kernel, on a short noise signal.
"""

import librosa
import numpy as np

from embeddings.alignment import STEP_WEIGHTS, STEPS

SR = 16000


def main() -> None:
    y = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    spec = librosa.stft(y, n_fft=1024, hop_length=256)
    librosa.istft(spec, hop_length=256, length=len(y))
    mag = np.abs(spec)
    librosa.util.softmask(mag, mag + 1.0, power=2)
    librosa.decompose.nn_filter(mag, aggregate=np.median, metric="cosine", width=3)
    librosa.yin(y, fmin=60, fmax=1000, sr=SR)
    librosa.pyin(y, fmin=60, fmax=1000, sr=SR)
    librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13)
    librosa.effects.time_stretch(y, rate=1.25)
    librosa.effects.pitch_shift(y, sr=SR, n_steps=2)
    a = np.random.default_rng(1).standard_normal((2, 40))
    librosa.sequence.dtw(X=a, Y=a[:, :30], subseq=True)
    for dtype in (np.float32, np.float64):  # each input type is a kernel of its own
        librosa.sequence.dtw(C=np.abs(a[:1].T - a[1:, :30]).astype(dtype), subseq=True,
                             step_sizes_sigma=STEPS, weights_mul=STEP_WEIGHTS)
    print("numba kernels compiled")


if __name__ == "__main__":
    main()
