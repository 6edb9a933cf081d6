"""The seed document's Keras example: cosine decay (Keras' own CosineDecay) with SGD.

Runs on any Keras 3 backend (KERAS_BACKEND=tensorflow|jax|torch): 10 updates on a tiny
regression, then prints the loss and the learning rate the next update would use.
"""

import keras
import numpy as np

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(320, 8)).astype("float32")
y = x @ np.linspace(-1.0, 1.0, 8, dtype="float32")[:, None]

lr_schedule = keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.1, decay_steps=1000, alpha=0.01)
optimizer = keras.optimizers.SGD(learning_rate=lr_schedule)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=optimizer, loss="mse")
history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # 320 / 32 = 10 steps

steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
print(f"steps={steps} loss={history.history['loss'][-1]:.6f} lr={lr:.9g}")
