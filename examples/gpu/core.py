"""Keras-on-JAX training core of the GPU runner: whole epochs in one compiled call.

Every network of a paired run is a :class:`Member`: a Keras model called statelessly
(``model.stateless_call`` in training mode, so BatchNormalization updates its moving
statistics with the layer's own ``momentum``) and its optimiser applied statelessly
(``optimizer.stateless_apply``). The state of a member is three lists of arrays
(trainable, non-trainable and optimiser variables), copied from the model once, so the
compiled functions may donate them without touching the model's own variables.

:func:`make_train_fn` compiles one function that runs a whole sequence of steps
(``jax.lax.scan``) for all members side by side on identical batches; the batches are
made on the device inside the loop (``batch_fn``), e.g. gathered from the training set
held on the device and augmented there with :func:`crop_flip`. :func:`make_eval_fn`
evaluates all members on a whole test set in one compiled call.

Example:

>>> member = Member("a", model, CoupledSGD(0.1, momentum=0.9), loss_fn)
>>> train = make_train_fn([member], batch_fn)
>>> states, losses = train((member.initial_state(),), (0.1,), data, inputs)
>>> member.assign(states[0])                      # into the Keras model, e.g. to save it
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Member",
    "cifar_epoch_inputs",
    "crop_flip",
    "make_eval_fn",
    "make_train_fn",
]


class Member:
    """One network of a paired run: a Keras model, its optimiser and its loss.

    Args:
        name: the member's name (file names, metric columns).
        model: a built Keras model.
        optimizer: a Keras optimiser whose learning rate is a float (a variable named
            ``learning_rate``, set per call of the train function).
        loss_fn: ``loss_fn(y_true, y_pred)`` -> scalar.
        preprocess: applied to the batch input inside the compiled step.

    Example:

    >>> member = Member("resnet56-basis", resnet56("basis"), opt, loss_fn)
    """

    def __init__(self, name, model, optimizer, loss_fn, preprocess=None):
        self.name, self.model, self.optimizer = name, model, optimizer
        self.loss_fn = loss_fn
        self.preprocess = preprocess or (lambda x: x)
        optimizer.build(model.trainable_variables)
        found = [i for i, v in enumerate(optimizer.variables) if v.name == "learning_rate"]
        if len(found) != 1:
            raise ValueError(
                f"Invalid value for argument `optimizer` of Member {name!r}. Expected an "
                f"optimiser with one `learning_rate` variable (a float learning rate, not a "
                f"schedule). Received {len(found)} such variables."
            )
        self.lr_index = found[0]

    def variables(self):
        """The model's and the optimiser's Keras variables, in state order."""
        return (self.model.trainable_variables, self.model.non_trainable_variables,
                self.optimizer.variables)

    def initial_state(self):
        """Copies of the current variable values (safe to donate)."""
        return tuple([jnp.array(v.value, copy=True) for v in group]
                     for group in self.variables())

    def assign(self, state):
        """Write ``state`` into the model's (and the optimiser's) own variables."""
        for group, values in zip(self.variables(), state):
            for var, value in zip(group, values):
                var.assign(np.asarray(value))

    def with_lr(self, state, lr):
        tv, ntv, ov = state
        ov = list(ov)
        ov[self.lr_index] = jnp.asarray(lr, dtype=ov[self.lr_index].dtype)
        return tv, ntv, ov

    def step(self, state, x, y):
        """One training step (pure): returns the new state and the batch loss."""
        tv, ntv, ov = state

        def loss_and_updates(tv, ntv):
            pred, ntv = self.model.stateless_call(tv, ntv, self.preprocess(x),
                                                  training=True)
            return self.loss_fn(y, pred), ntv

        (loss, ntv), grads = jax.value_and_grad(loss_and_updates, has_aux=True)(tv, ntv)
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        return (tv, ntv, ov), loss

    def predict(self, state, x):
        """Inference-mode outputs for ``x`` (pure)."""
        tv, ntv, _ = state
        pred, _ = self.model.stateless_call(tv, ntv, self.preprocess(x), training=False)
        return pred


def make_train_fn(members, batch_fn, unroll=1):
    """Compile ``train(states, lrs, data, inputs)``: all members, ``len(inputs)`` steps.

    Args:
        members: the :class:`Member` objects, trained side by side on identical batches.
        batch_fn: ``batch_fn(data, inputs_of_one_step)`` -> ``(x, y)`` (traced, runs on
            the device inside the loop).
        unroll: steps per iteration of the compiled loop (``jax.lax.scan``'s ``unroll``).

    Returns:
        A jitted function ``train(states, lrs, data, inputs)`` -> ``(states, losses)``:
        ``states`` one state per member (donated: pass fresh copies, never the model's
        variables), ``lrs`` one learning rate per member for all the steps, ``data``
        arrays that stay on the device between calls, ``inputs`` a pytree whose leading
        axis is the step; ``losses`` has shape ``(steps, len(members))``.
    """

    def train(states, lrs, data, inputs):
        states = tuple(m.with_lr(s, lr) for m, s, lr in zip(members, states, lrs))

        def body(carry, inp):
            x, y = batch_fn(data, inp)
            new, losses = [], []
            for m, s in zip(members, carry):
                s, loss = m.step(s, x, y)
                new.append(s)
                losses.append(loss.astype(jnp.float32))
            return tuple(new), jnp.stack(losses)

        return jax.lax.scan(body, states, inputs, unroll=unroll)

    return jax.jit(train, donate_argnums=0)


def make_eval_fn(members, batch_size):
    """Compile ``evaluate(states, x, y)`` -> correct top-1 count of each member.

    ``x`` and ``y`` are padded inside to a multiple of ``batch_size`` (padding rows
    carry label -1 and never count); the whole set is one compiled call.
    """

    def evaluate(states, x, y):
        n = x.shape[0]
        pad = -n % batch_size
        x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
        y = jnp.concatenate([y.astype(jnp.int32), jnp.full((pad,), -1, jnp.int32)])
        xb = x.reshape((-1, batch_size) + x.shape[1:])
        yb = y.reshape(-1, batch_size)

        def body(total, xy):
            xi, yi = xy
            hits = [jnp.sum(jnp.argmax(m.predict(s, xi), -1) == yi)
                    for m, s in zip(members, states)]
            return total + jnp.stack(hits).astype(jnp.int32), None

        total, _ = jax.lax.scan(body, jnp.zeros(len(members), jnp.int32), (xb, yb))
        return total

    return jax.jit(evaluate)


def cifar_epoch_inputs(key, n, batch_size, pad=4):
    """The random draws of one epoch: batch indices, crop offsets and flips.

    Args:
        key: a ``jax.random`` key (one per epoch).
        n: training images.
        batch_size: images per step; ``n // batch_size`` steps (the last partial batch
            is dropped).
        pad: zero padding of the random crop.

    Returns:
        ``(idx, dy, dx, flip)``, each of shape ``(steps, batch_size)``: a permutation of
        the images, the crop's top-left corner in ``[0, 2 * pad]`` and the flip flag.
    """
    steps = n // batch_size
    k_perm, k_y, k_x, k_f = jax.random.split(key, 4)
    shape = (steps, batch_size)
    idx = jax.random.permutation(k_perm, n)[: steps * batch_size].reshape(shape)
    dy = jax.random.randint(k_y, shape, 0, 2 * pad + 1)
    dx = jax.random.randint(k_x, shape, 0, 2 * pad + 1)
    flip = jax.random.bernoulli(k_f, 0.5, shape)
    return idx, dy, dx, flip


def crop_flip(images, dy, dx, flip, pad=4):
    """Pad-``pad`` random crop and horizontal flip of a batch, on the device.

    Args:
        images: ``(n, h, w, c)`` (any dtype; zero padding).
        dy, dx: ``(n,)`` top-left corners of the crops in the padded images.
        flip: ``(n,)`` booleans: mirror left-right after the crop.
        pad: the padding on every side.

    Returns:
        ``(n, h, w, c)`` crops, ``images.dtype``.
    """
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(img, y, x):
        return jax.lax.dynamic_slice(img, (y, x, 0), (h, w, c))

    out = jax.vmap(one)(padded, dy, dx)
    return jnp.where(flip[:, None, None, None], out[:, :, ::-1], out)
