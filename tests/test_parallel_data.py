"""Batches onto devices: pmap layout and mesh sharding agree with the host batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax import parallel as P
from lstmjax.data import batching as B


def host_batch():
    data = {"token_ids": [[i + 2] * (i % 5 + 1) for i in range(30)], "label": [i % 2 for i in range(30)]}
    return next(B.batches(data, 16, max_length=8))


@pytest.mark.parametrize("num_devices", [1, 2, 8])
def test_pmap_layout(num_devices):
    batch = host_batch()
    devices = jax.local_devices()[:num_devices]
    sharded = P.shard_batch_for_pmap(batch, devices)
    for k, x in batch.items():
        assert sharded[k].shape == (num_devices, 16 // num_devices, *x.shape[1:]) and sharded[k].dtype == x.dtype
        np.testing.assert_array_equal(np.asarray(sharded[k]).reshape(x.shape), x)
    counts = jax.pmap(lambda b: jnp.sum(b["lengths"] * b["mask"].astype(jnp.int32)), devices=devices)(sharded)
    assert int(counts.sum()) == int(batch["lengths"].sum())
    assert [s.device for s in sharded["labels"].addressable_shards] == devices


@pytest.mark.parametrize("num_devices", [1, 4, 8])
def test_mesh_sharding_is_batch_split(num_devices):
    batch = host_batch()
    mesh = P.make_mesh(num_devices)
    sharded = P.shard_batch_to_mesh(batch, mesh)
    for k, x in batch.items():
        assert sharded[k].shape == x.shape
        assert sharded[k].sharding == jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        np.testing.assert_array_equal(np.asarray(sharded[k]), x)
    per_shard = [s.data.shape[0] for s in sharded["token_ids"].addressable_shards]
    assert per_shard == [16 // num_devices] * num_devices
    total = jax.jit(lambda b: jnp.sum(b["lengths"]))(sharded)
    assert int(total) == int(batch["lengths"].sum())


def test_indivisible_batch_is_an_error():
    with pytest.raises(ValueError, match=r"\['lengths'\] has shape \(6,\).*divide by 4"):
        P.shard_batch_for_pmap({"lengths": np.zeros(6, np.int32)}, jax.local_devices()[:4])
    with pytest.raises(ValueError, match="divide by 8"):
        P.shard_batch_to_mesh({"lengths": np.zeros(6, np.int32)}, P.make_mesh())
    with pytest.raises(ValueError, match="num_devices"):
        P.make_mesh(99)
