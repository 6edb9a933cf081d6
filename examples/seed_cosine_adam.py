"""The seed document's cosine annealing example: Keras' CosineDecay over 200 steps with Adam.

Trains a tiny convolutional classifier on random images for 10 updates (any Keras 3 backend),
then prints the loss and the learning rate the next update would use.
"""

import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(160, 8, 8, 1)).astype("float32")
y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")

lr_schedule = keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.01, decay_steps=200)
optimizer = keras.optimizers.Adam(learning_rate=lr_schedule)
model = keras.Sequential(
    [
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ]
)
model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 160 / 16 = 10 steps

steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
print(f"steps={steps} loss={history.history['loss'][-1]:.6f} lr={lr:.9g}")
