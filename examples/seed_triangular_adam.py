"""The seed document's triangular cyclical LR with Adam, on Keras 3.

The seed wrote ``tf.keras.optimizers.schedules.TriangularLearningRate``, which Keras does not
have; ``cyclr.keras.TriangularLearningRate`` takes the same arguments, so only the import changes.
Runs on any Keras 3 backend; 10 updates, then prints the loss and the next update's LR.
"""

import keras
import numpy as np

from cyclr.keras import TriangularLearningRate

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(320, 8)).astype("float32")
y = x @ np.linspace(-1.0, 1.0, 8, dtype="float32")[:, None]

lr_schedule = TriangularLearningRate(initial_learning_rate=0.001, maximal_learning_rate=0.01, step_size=200)
optimizer = keras.optimizers.Adam(learning_rate=lr_schedule)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=optimizer, loss="mse")
history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # 320 / 32 = 10 steps

steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
print(f"steps={steps} loss={history.history['loss'][-1]:.6f} lr={lr:.9g}")
