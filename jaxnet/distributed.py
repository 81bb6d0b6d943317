"""Several processes, one training run: ``jax.distributed`` (JAX's own multi-host runtime).

Every process runs the same program. :func:`initialize` connects it to the others before any JAX
computation: process 0 starts a coordinator service at ``HOST:PORT``, the others connect to it, and from
then on ``jax.devices()`` lists the devices of every process (``jax.local_devices()`` only its own). On CPU
the collectives between processes (the gradient all-reduce) go through gloo over TCP, JAX's default CPU
implementation (``jax_cpu_collectives_implementation``, "gloo" in jax 0.10); GPUs and TPUs use their own.

The helpers below let :mod:`jaxnet.train` run one code path for one and for several processes: every
process holds the same host data (loaded from the same files with the same seed), :func:`global_array`
makes a global array of it of which each process fills only its own devices' shards, :func:`host_array`
brings a result back to every process, and :func:`from_main_process` runs a step such as reading a
checkpoint on process 0 alone and hands its result (or its exception) to all processes. With one process
each of them is the plain single-process call (``jax.device_put``, ``jax.device_get``, a direct call).
"""

from __future__ import annotations

import ipaddress
import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import numpy as np

#: Environment variables read when an argument is not given. The first is JAX's own.
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"

DEFAULT_TIMEOUT_S = 300

T = TypeVar("T")


class DistributedError(Exception):
    """Arguments that cannot start a multi-process run; the message says which and why."""


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (IPv6 as ``"[::1]:PORT"``) -> ``(host, port)``; a clear error otherwise."""
    host, sep, port = str(address).strip().rpartition(":")
    if not sep or not host or not port.isdigit() or (":" in host and not host.startswith("[")):
        raise DistributedError(f"coordinator address {address!r} must be HOST:PORT (the address of process 0 and a "
                               f"free port on it, the same on every process), e.g. 10.0.0.1:1234 or [fd00::1]:1234")
    if not 1 <= int(port) <= 65535:
        raise DistributedError(f"coordinator address {address!r}: port {port} is not in 1-65535")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _int_from(value: Any, name: str, env: str) -> int | None:
    if value is None:
        value = os.environ.get(env) or None
        if value is None:
            return None
        name = f"${env}"
    if isinstance(value, bool) or not str(value).strip().lstrip("-").isdigit():
        raise DistributedError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _timed_out(address: str, num_processes: int, process_id: int, timeout_s: float) -> None:
    host, port = parse_address(address)
    print(f"jaxnet.distributed: process {process_id} of {num_processes} gave up after {timeout_s:g} s: not all "
          f"{num_processes} processes connected to the coordinator at {address}. Check that\n"
          f"  - every process was started, each with its own process id 0..{num_processes - 1} (process 0 "
          f"runs the coordinator),\n"
          f"  - all were given the same coordinator address and number of processes,\n"
          f"  - {host} is process 0's host as the others can reach it (not localhost across machines) and nothing "
          f"else uses port {port} there,\n"
          f"  - no firewall blocks port {port}, nor the gloo ports the processes open to each other on CPU (each "
          f"host's name must resolve to an address the others can reach),\n"
          f"  - no http(s)_proxy variable redirects the connection.", file=sys.stderr, flush=True)
    os._exit(1)  # JAX would abort the process moments later, with a C++ stack trace instead of this message


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None, *,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Connects this process to the others of a multi-process run; call it before any JAX computation.

    Args:
      coordinator_address: ``HOST:PORT`` of process 0, the same for every process (default:
        ``$JAX_COORDINATOR_ADDRESS``). Process 0 listens on PORT, on every interface (only on the
        loopback one when HOST is a loopback address, for runs on one machine).
      num_processes: how many processes take part (default: ``$JAX_NUM_PROCESSES``).
      process_id: this process's number, 0..num_processes-1 (default: ``$JAX_PROCESS_ID``).
      local_device_ids: the local devices this process uses (default: all; ``$JAX_LOCAL_DEVICE_IDS``).
      timeout_s: how long to wait for all processes to connect. After that the process prints what to
        check and exits with status 1.

    With none of the three given (arguments or environment), JAX's own detection of a managed cluster
    (Slurm, Open MPI, Cloud TPU, Kubernetes) fills them in; with some but not all, it is an error.
    """
    num_processes = _int_from(num_processes, "num_processes", ENV_NUM_PROCESSES)
    process_id = _int_from(process_id, "process_id", ENV_PROCESS_ID)
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    if jax.distributed.is_initialized():
        raise DistributedError("jax.distributed is already initialized in this process; initialize it once")
    if not timeout_s > 0:
        raise DistributedError(f"timeout_s must be positive, got {timeout_s}")
    given = {"coordinator address": coordinator_address, "number of processes": num_processes,
             "process id": process_id}
    if all(value is None for value in given.values()):
        try:  # a managed cluster, or nothing: JAX says which
            jax.distributed.initialize(local_device_ids=local_device_ids, initialization_timeout=int(timeout_s))
        except ValueError as error:
            raise DistributedError(
                f"no coordinator address, number of processes and process id given (nor ${ENV_COORDINATOR}, "
                f"${ENV_NUM_PROCESSES}, ${ENV_PROCESS_ID}) and no cluster that JAX detects by itself "
                f"(Slurm, Open MPI, Cloud TPU, Kubernetes): {error}") from None
        except RuntimeError as error:
            raise DistributedError(str(error)) from None
        return
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise DistributedError(f"a multi-process run needs a coordinator address, the number of processes and this "
                               f"process's id, all three; missing: {', '.join(missing)}")
    host, port = parse_address(coordinator_address)
    if num_processes < 1:
        raise DistributedError(f"the number of processes must be at least 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise DistributedError(f"process id {process_id} is not in 0..{num_processes - 1} (process ids of "
                               f"{num_processes} processes are 0 to {num_processes - 1}, each used once)")
    bind = f"{host}:{port}" if _is_loopback(host) else None  # None: JAX's default, every interface
    watchdog = threading.Timer(timeout_s, _timed_out, (coordinator_address, num_processes, process_id, timeout_s))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id, local_device_ids,
                                   cluster_detection_method="deactivate",
                                   initialization_timeout=int(timeout_s) + 30,  # the watchdog speaks first
                                   coordinator_bind_address=bind)
    except RuntimeError as error:  # e.g. JAX was already used in this process
        raise DistributedError(str(error)) from None
    finally:
        watchdog.cancel()


def is_main_process() -> bool:
    """True in process 0 (and in a single-process run): the one that writes files and prints."""
    return jax.process_index() == 0


def global_array(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Host values (the same on every process) -> arrays with ``sharding``; each process puts only the
    shards of its own devices. In one process this is ``jax.device_put``."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def put(leaf):
        leaf = np.asarray(leaf)
        return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])

    return jax.tree.map(put, tree)


def host_array(tree: Any) -> Any:
    """Arrays -> numpy arrays with the whole value, on every process. Arrays split across processes are
    gathered (a collective: every process must call this). In one process this is ``jax.device_get``."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def get(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable or leaf.is_fully_replicated:
            return np.asarray(leaf)
        return multihost_utils.process_allgather(leaf, tiled=True)

    return jax.tree.map(get, tree)


def from_main_process(fn: Callable[[], T]) -> T:
    """Calls ``fn`` on process 0 only and returns its result on every process; if ``fn`` raised there, every
    process raises the same exception (so that none waits for the others forever). Every process must
    call this. In one process it is ``fn()``.

    The result travels pickled, from process 0 of the same run, through JAX's collectives.
    """
    if jax.process_count() == 1:
        return fn()
    from jax.experimental import multihost_utils

    payload = np.zeros(0, np.uint8)
    if is_main_process():
        try:
            outcome = (True, fn())
        except Exception as error:  # noqa: BLE001  (re-raised below, on every process)
            outcome = (False, error)
        try:
            data = pickle.dumps(outcome)
        except Exception as error:  # noqa: BLE001  (an unpicklable result or exception)
            data = pickle.dumps((False, RuntimeError(f"process 0: {outcome[1]!r} ({error})")))
        payload = np.frombuffer(data, np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(payload.size)))
    if not is_main_process():
        payload = np.zeros(size, np.uint8)
    ok, value = pickle.loads(multihost_utils.broadcast_one_to_all(payload).tobytes())
    if not ok:
        raise value
    return value
