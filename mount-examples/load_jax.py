#!/usr/bin/env python3
"""Load every tensor of a tpfs mount into a dict, the way a JAX or NumPy
training script would.

    load_jax.py MNT [--mmap] [--filter REGEX] [--numpy]

manifest.json is the map from tensor names to files. With JAX installed the
arrays become jax.numpy arrays, and tensors stored as BF16 come back as
bfloat16 (from the |V2 bits a bf16=raw or mxfp4=bf16 mount serves, or
exactly from the float32 tpfs widens them to); without JAX, or with --numpy,
they stay NumPy arrays. --mmap makes loading lazy: the dict maps each
file (and makes the JAX array) when its tensor is first looked up, so
loading costs nothing until a tensor is used, and then only that tensor.
"""
import argparse
import collections.abc
import json
import os
import re
import sys
import time

import numpy as np

try:
    import jax.numpy as jnp
except ImportError:
    jnp = None


def to_jax(array, entry):
    """A jax.numpy array of the tensor, bfloat16 where the source was BF16."""
    if entry["dtype"] == "|V2":  # bfloat16 bits as stored
        return jnp.asarray(np.asarray(array).view(np.uint16)).view(jnp.bfloat16)
    if entry["source_dtype"] == "BF16" and entry["dtype"] == "<f4":
        return jnp.asarray(array, dtype=jnp.bfloat16)  # exact: they are bf16 values
    return jnp.asarray(array)


class Lazy(collections.abc.Mapping):
    """{name: array} that maps a tensor's file, and makes its JAX array,
    when the name is first looked up."""

    def __init__(self, mount, entries, use_jax):
        self.mount = mount
        self.entries = entries
        self.use_jax = use_jax
        self.arrays = {}

    def __getitem__(self, name):
        if name not in self.arrays:
            entry = self.entries[name]
            array = np.load(os.path.join(self.mount, entry["path"]), mmap_mode="r",
                            allow_pickle=False)
            self.arrays[name] = to_jax(array, entry) if self.use_jax else array
        return self.arrays[name]

    def __iter__(self):
        return iter(self.entries)

    def __len__(self):
        return len(self.entries)


def load(mount, pattern=None, mmap=False, use_jax=None):
    """Return ({name: array}, manifest) for the tensors whose names match:
    read now, or with mmap looked up lazily (a Lazy mapping)."""
    use_jax = jnp is not None if use_jax is None else use_jax
    with open(os.path.join(mount, "manifest.json")) as f:
        manifest = json.load(f)
    wanted = re.compile(pattern) if pattern else None
    entries = {e["name"]: e for e in manifest["tensors"]
               if not wanted or wanted.search(e["name"])}
    if mmap:
        return Lazy(mount, entries, use_jax), manifest
    tensors = {}
    for name, entry in entries.items():
        array = np.load(os.path.join(mount, entry["path"]), allow_pickle=False)
        tensors[name] = to_jax(array, entry) if use_jax else array
    return tensors, manifest


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mount", help="a tpfs mount point (or a tpfs convert output)")
    p.add_argument("--mmap", action="store_true",
                   help="load lazily: map each file when its tensor is first used")
    p.add_argument("--filter", metavar="REGEX", help="only names that match")
    p.add_argument("--numpy", action="store_true", help="NumPy even if JAX is there")
    args = p.parse_args()
    start = time.perf_counter()
    tensors, _ = load(args.mount, args.filter, args.mmap, False if args.numpy else None)
    seconds = time.perf_counter() - start
    params = sum(int(np.prod(tensors[name].shape)) for name in tensors)
    kind = "jax" if (jnp is not None and not args.numpy) else "numpy"
    print("%d tensors, %d parameters, %.2f s, %.0f parameters/s (%s%s)" % (
        len(tensors), params, seconds, params / seconds if seconds else 0, kind,
        ", mmap" if args.mmap else ""))
    return 0 if tensors else 1


if __name__ == "__main__":
    sys.exit(main())
