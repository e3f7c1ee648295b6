"""The count model's layers in Keras (JAX backend): the seed CNN with five
linear outputs trained on the squared error, on random 64x64 RGB tiles with
random counts 0-3. The twin of `cargo run --example bench_train -- --counts`,
set up as ../shared/bench/keras_train.py (a warm-up epoch on 256 samples,
then one timed epoch, batch 64, Adam)."""
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
model = keras.Sequential([
    keras.Input((64, 64, 3)),
    layers.Rescaling(1 / 255.0, offset=-0.5),
    layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Flatten(),
    layers.Dense(512, activation="relu"), layers.Dropout(0.5),
    layers.Dense(512, activation="relu"), layers.Dropout(0.5),
    layers.Dense(5),
])
model.compile(loss="mse", optimizer="adam")
x = np.random.rand(n, 64, 64, 3).astype(np.float32) * 255
y = np.random.randint(0, 4, (n, 5)).astype(np.float32)
model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # warm-up / compile
t = time.time()
model.fit(x, y, batch_size=64, epochs=1, verbose=0)
print(f"train: {n / (time.time() - t):.1f} samples/s")
