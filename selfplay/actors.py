"""Ray actors for a launched run: a pool of named actors, and judges and the sandbox in them.

In a launched run (``selfplay launch``, a Ray cluster) completions are judged and untrusted
programs run in actors, with the shares of the ``resources:`` section, instead of in every
training worker. Three pieces:

- ``ActorPool``: ``size`` named actors of one class. A batch is cut into contiguous chunks,
  one call per actor, and the results come back in input order. Ray restarts an actor that
  dies (up to ``max_restarts`` times) and retries the calls it had not finished; each call's
  result is taken once, so no item is lost or counted twice. Every wait has a deadline
  (``actor_timeout``): actors hold their CPU share while they live, and a call waiting for
  a CPU that never frees would otherwise wait forever with no error.
- ``JudgeActor`` and ``RayJudge``: a judge (``selfplay.judges.Judge``) whose judging runs in
  actors that build their environments from names and options.
- ``RayExecutor``: the programs environments' executor, ``(code, expression) -> Result``,
  run by the ``Sandbox`` of a judge actor.

Pools are found by name. The actors are ``<pool>-0``, ``<pool>-1``, ... in a Ray namespace;
a pool, a ``RayJudge``, a ``RayExecutor`` and a ``JudgeFactory`` pickle as that name and look
the actors up (``ray.get_actor``) on first use, so a training worker or a ``datasets``
generator in another process needs only the name. The actors are not detached: Ray ends them
when the ``ActorPool`` that started them is dropped, or its process (the launcher) exits, so a
run leaves none behind. Keep that pool referenced while others use the actors.

Ray is imported where it is used: the package imports without it (the ``ray`` extra).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from envs import Environment, Task, Verdict
from selfplay.errors import ActorDied, ActorTimeout

if TYPE_CHECKING:
    from selfplay.resources import ResourcesConfig
    from selfplay.sandbox import Result, Sandbox

NAMESPACE = "selfplay"
"""The Ray namespace pools are named in, unless the caller picks another."""
JUDGE_POOL = "selfplay-judges"
"""The default name of the judge actors' pool."""

START_SECONDS = 120.0
"""How long ``ActorPool.start`` waits for its actors by default (``timeout`` is for calls):
each is a new process importing its modules, seconds on a busy node."""

_CONTROL = "pool"  # a concurrency group of its own, so where() answers while a call hangs
_WHERE_SECONDS = 2.0


def split(n: int, parts: int, keys: Sequence | None = None) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous, non-empty, near-equal pieces.

    With ``keys`` (one per item), a cut never falls between two equal adjacent keys: a
    cut is moved forward to the next change of key.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    if keys is not None and len(keys) != n:
        raise ValueError(f"split: {n} items but {len(keys)} keys")
    cuts = [0]
    for k in range(1, parts):
        cut = max(round(k * n / parts), cuts[-1] + 1)
        while keys is not None and cut < n and keys[cut - 1] == keys[cut]:
            cut += 1
        if cut < n:
            cuts.append(cut)
    cuts.append(n)
    return [range(a, b) for a, b in itertools.pairwise(cuts) if b > a]


class ActorPool:
    """``size`` named Ray actors of one class; see the module docstring.

    ``ActorPool.start`` creates the actors; ``ActorPool(name)`` finds them on first use,
    in any process of the Ray cluster. A pool pickles as its name, namespace and timeout.
    Thread-safe.
    """

    def __init__(self, name: str, namespace: str = NAMESPACE, timeout: float = 300.0):
        if timeout <= 0:
            raise ValueError(f"actor pool {name!r}: timeout must be above 0, got {timeout}")
        self.name, self.namespace, self.timeout = name, namespace, float(timeout)
        self._handles: list | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._turn = itertools.count()

    @classmethod
    def start(
        cls,
        actor_class: type,
        args: tuple = (),
        *,
        name: str,
        size: int,
        cpus: float,
        timeout: float,
        max_restarts: int,
        namespace: str = NAMESPACE,
        start_timeout: float = START_SECONDS,
    ) -> ActorPool:
        """Start ``size`` actors ``actor_class(*args)`` named ``<name>-<i>``, each holding
        ``cpus`` CPUs, and wait until all are up (at most ``start_timeout`` seconds).

        Each call may take ``timeout`` seconds. A dead actor is restarted at most
        ``max_restarts`` times, and each call it had not finished is retried until it is done
        or the restarts run out (``max_task_retries=-1``: with Ray 2.60, calls that reach a
        restarting actor fail as "unavailable" and use up retries too, so a finite count
        equal to ``max_restarts`` can lose a call to a single death).
        Raises ActorTimeout when an actor cannot be placed in time (the message says how
        many CPUs Ray has free), ActorDied when one fails to start (its constructor's error
        in the message), ValueError when the name is taken.
        """
        import ray

        if size < 1:
            raise ValueError(f"actor pool {name!r}: size must be at least 1, got {size}")
        remote = ray.remote(concurrency_groups={_CONTROL: 1})(actor_class)
        pool = cls(name, namespace, start_timeout)
        pool._handles = []
        try:
            for i in range(size):
                options = dict(name=f"{name}-{i}", namespace=namespace, num_cpus=cpus)
                options.update(max_restarts=max_restarts, max_task_retries=-1)
                try:
                    pool._handles.append(remote.options(**options).remote(*args))
                except ValueError as err:  # Ray's "name already taken"
                    raise ValueError(
                        f"actor pool {name!r} in namespace {namespace!r}: {err}"
                    ) from None
            refs = [handle.__ray_ready__.remote() for handle in pool._handles]
            pool._gather(refs, list(range(size)), [f"starting ({cpus:g} CPU)"] * size)
        except BaseException:
            pool.close()
            raise
        pool.timeout = float(timeout)
        return pool

    @property
    def size(self) -> int:
        """The number of actors."""
        return len(self._actors())

    def call(self, method: str, *args: Any, what: str) -> Any:
        """``method(*args)`` on the next actor in turn; its result. ``what`` says what the call
        does, for the error messages."""
        i = next(self._turn) % self.size
        return self._gather([getattr(self._actors()[i], method).remote(*args)], [i], [what])[0]

    def run(self, method: str, calls: Sequence[tuple], whats: Sequence[str]) -> list:
        """``method(*args)`` for each ``args`` of ``calls``, all at once, call ``j`` on actor
        ``j % size``; the results in order. ``whats[j]`` says what call ``j`` does.

        Every call must be done within ``timeout`` seconds of this one. The first failure
        raises: an exception of the method's own (Ray's subclass of its type, the actor's
        traceback in its message; never retried), ActorDied or ActorTimeout, and the other
        calls are cancelled. On a timeout the late calls' actors are restarted too (a
        cancelled call is not retried), so the pool stays usable if the caller goes on.
        """
        if len(calls) != len(whats):
            raise ValueError(f"actor pool {self.name!r}: {len(calls)} calls but {len(whats)} whats")
        actors = self._actors()
        owners = [j % len(actors) for j in range(len(calls))]
        refs = [
            getattr(actors[i], method).remote(*args) for i, args in zip(owners, calls, strict=True)
        ]
        return self._gather(refs, owners, list(whats))

    def map(self, method: str, items: Sequence, what: str, keys: Sequence | None = None) -> list:
        """``method(chunk)`` over contiguous chunks of ``items``, one per actor, concatenated
        in input order; ``method`` returns one result per item of its chunk. With ``keys``,
        items whose adjacent keys are equal stay in one chunk (``split``)."""
        parts = split(len(items), self.size, keys)
        calls = [(list(items[part.start : part.stop]),) for part in parts]
        whats = [f"{what} (items {p.start} to {p.stop - 1} of {len(items)})" for p in parts]
        out: list = []
        results = self.run(method, calls, whats)
        for part, result, said in zip(parts, results, whats, strict=True):
            if len(result) != len(part):
                raise RuntimeError(
                    f"actor pool {self.name!r}: {method} returned {len(result)} results "
                    f"for {len(part)} items, {said}"
                )
            out.extend(result)
        return out

    def where(self, i: int) -> tuple[int, str]:
        """Process id and node address of actor ``i``, asked of the actor itself (it answers
        even while a call is running); raises if it does not answer in a few seconds."""
        import ray

        ask = self._actors()[i].__ray_call__.options(concurrency_group=_CONTROL)
        return ray.get(ask.remote(_whereabouts), timeout=_WHERE_SECONDS)

    def close(self) -> None:
        """Kill the actors, without restart; calls in flight fail. Idempotent."""
        import ray

        with self._lock:
            handles = self._handles if self._handles is not None else []
            self._handles, self._closed = [], True
        for handle in handles:
            ray.kill(handle, no_restart=True)

    def __getstate__(self) -> dict:
        return {"name": self.name, "namespace": self.namespace, "timeout": self.timeout}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"ActorPool({self.name!r}, namespace={self.namespace!r}, timeout={self.timeout:g})"

    # -- internals -----------------------------------------------------------------------

    def _actors(self) -> list:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"actor pool {self.name!r} is closed")
            if self._handles is None:
                self._handles = _lookup(self.name, self.namespace)
            return self._handles

    def _gather(self, refs: list, owners: list[int], whats: list[str]) -> list:
        """The results of ``refs`` in order; raises on the first failure or at the deadline."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        deadline = time.monotonic() + self.timeout
        index = {ref: j for j, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        while pending:
            left = max(0.0, deadline - time.monotonic())
            ready, pending = ray.wait(pending, num_returns=1, timeout=left)
            if not ready:
                self._time_out(pending, index, owners, whats)
            j = index[ready[0]]
            try:
                results[j] = ray.get(ready[0], timeout=self.timeout)
            except RayActorError as err:
                _cancel(pending)
                lines = [line.strip() for line in str(err).splitlines() if line.strip()]
                if err.actor_init_failed:
                    raise ActorDied(
                        f"actor {self._name(owners[j])} failed {whats[j]}: its constructor "
                        f"raised {lines[-1] if lines else type(err).__name__}"
                    ) from err
                facts = [line for line in lines[1:] if line.startswith(("pid:", "ip:"))]
                raise ActorDied(
                    f"actor {self._name(owners[j])} died {whats[j]}, and Ray did not bring it "
                    "back (its restarts, resources.max_restarts, used up, or its node gone): "
                    + " ".join([lines[0] if lines else type(err).__name__, *facts])
                ) from err
            except RayTaskError as err:
                _cancel(pending)
                if hasattr(err, "add_note"):  # Python 3.11+
                    err.add_note(f"(in actor {self._name(owners[j])}, {whats[j]})")
                raise
        return results

    def _time_out(self, pending: list, index: dict, owners: list[int], whats: list[str]):
        """Cancel the late calls, restart their actors, and raise ActorTimeout."""
        import ray

        late = sorted(index[ref] for ref in pending)
        where = self._describe(owners[late[0]])  # before the restart: the pid of the late one
        _cancel(pending)  # a cancelled call is not retried on the restarted actor
        actors = self._actors()
        for i in sorted({owners[j] for j in late}):
            ray.kill(actors[i], no_restart=False)
        others = f" ({len(late) - 1} other calls were late too)" if len(late) > 1 else ""
        raise ActorTimeout(
            f"actor {where} took more than {self.timeout:g}s {whats[late[0]]}{others}; the late "
            "calls were cancelled and their actors restarted. If the work is only slow, raise "
            "the timeout (resources.actor_timeout)"
        )

    def _name(self, i: int) -> str:
        return f"{self.name}-{i}"

    def _describe(self, i: int) -> str:
        """``name (pid P on node N)``, or why that is not known."""
        import ray

        try:
            pid, node = self.where(i)
            return f"{self._name(i)} (pid {pid} on {node})"
        except Exception:  # dead, restarting or never placed: only the message is at stake
            free = ray.available_resources().get("CPU", 0.0)
            total = ray.cluster_resources().get("CPU", 0.0)
            return f"{self._name(i)} (not answering; Ray has {free:g} of {total:g} CPUs free)"


def _lookup(name: str, namespace: str) -> list:
    """Handles of the actors ``<name>-0``, ``<name>-1``, ... up to the first missing one."""
    import ray

    handles = []
    while True:
        try:
            handles.append(ray.get_actor(f"{name}-{len(handles)}", namespace=namespace))
        except ValueError:
            break
    if not handles:
        raise LookupError(
            f"no actor pool {name!r} in Ray namespace {namespace!r} (no actor {name}-0): "
            "start it with ActorPool.start, in a process that outlives its use"
        )
    return handles


def _whereabouts(actor: object) -> tuple[int, str]:
    """Run in an actor (``__ray_call__``): its process id and node address."""
    import ray

    return os.getpid(), ray.util.get_node_ip_address()


def _cancel(refs: list) -> None:
    import ray

    for ref in refs:
        ray.cancel(ref)


# ---- judges and the sandbox in actors -----------------------------------------------------


class JudgeActor:
    """What a judge actor holds: environments built from ``{name: options}``, and a
    ``Sandbox`` of ``sandbox_workers`` workers, started on first use, that runs the programs
    of those environments and of ``RayExecutor`` callers.

    Each ``judge`` call uses a fresh judge and returns its counts with the verdicts, so the
    actor keeps no tally: a call that Ray retries on a restarted actor counts once, and a
    failed call leaves nothing behind.
    """

    def __init__(self, envs: dict[str, dict], sandbox_workers: int = 1):
        from envs import load_env

        self.sandbox_workers = sandbox_workers
        self._sandbox: Sandbox | None = None
        self.envs: dict[str, Environment] = {}
        for name, options in envs.items():
            env = load_env(name, **options)
            if getattr(env, "executor", 0) is None:  # it runs programs: in this actor's pool
                env.executor = self.run
            self.envs[name] = env

    def judge(
        self, judge: str, tasks: list[Task], completions: list[str]
    ) -> tuple[list[Verdict], dict[str, int]]:
        """The verdicts of the judge named ``judge``, and its counts for this batch."""
        from selfplay.judges import make_judge

        scorer = make_judge(judge, self.envs)
        verdicts = scorer(tasks, completions)
        return verdicts, scorer.counts()

    def run(self, code: str, expression: str | None = None) -> Result:
        """``Sandbox.run`` in this actor's pool."""
        if self._sandbox is None:
            from selfplay.sandbox import Sandbox

            self._sandbox = Sandbox(self.sandbox_workers)
        return self._sandbox.run(code, expression)


def start_judges(
    envs: dict[str, dict],
    resources: ResourcesConfig,
    *,
    name: str = JUDGE_POOL,
    namespace: str = NAMESPACE,
    actor: type[JudgeActor] = JudgeActor,
    sandbox_workers: int = 1,
) -> ActorPool:
    """``resources.judge_actors`` judge actors holding ``resources.judge_cpus`` each, over
    the environments ``{name: options}``; for ``RayJudge`` and ``RayExecutor``.

    The environments are built here once too (they are small and pure), so an unknown name
    or a bad option raises here, before any actor starts.
    """
    from envs import load_env

    if resources.judge_actors < 1:
        raise ValueError("resources.judge_actors is 0: judge in each worker (make_judge) instead")
    for env, options in envs.items():
        load_env(env, **options)
    return ActorPool.start(
        actor,
        (envs, sandbox_workers),
        name=name,
        size=resources.judge_actors,
        cpus=resources.judge_cpus,
        timeout=resources.actor_timeout,
        max_restarts=resources.max_restarts,
        namespace=namespace,
    )


class RayJudge:
    """A judge (``selfplay.judges.Judge``) that judges in the actors of ``pool``.

    A batch is cut into one chunk per actor at task boundaries: all completions of a task,
    adjacent or not, go to one actor, as the majority vote needs. The chunks are judged at
    once and the verdicts come back in input order. ``stats`` adds up the actors' counts of
    this object's batches, so it equals the in-process judge's for the same batches. A
    scorer's JudgeError reaches the caller as a JudgeError (Ray's subclass of it, with the
    actor's traceback) and is never retried; a dead or late actor raises ActorDied or
    ActorTimeout. Several ``RayJudge`` (one per training worker, or per use) can share a pool.
    """

    def __init__(self, pool: ActorPool, judge: str = "program"):
        from selfplay.judges import registered_judges

        judges = registered_judges()
        if judge not in judges:
            raise ValueError(f"unknown judge {judge!r}; choose one of: {', '.join(judges)}")
        if not (hasattr(judges[judge], "counts") and hasattr(judges[judge], "summarise")):
            raise ValueError(
                f"judge {judge!r} cannot run in judge actors: it has no counts() and "
                "summarise() to add up the actors' parts; set resources.judge_actors to 0"
            )
        self.pool, self.judge = pool, judge
        self._summarise = judges[judge].summarise
        self._zero = judges[judge]({}).counts()
        self._counts = dict(self._zero)

    def __call__(self, tasks: list[Task], completions: list[str], what: str = "") -> list[Verdict]:
        """One verdict per completion, in input order. ``what`` (e.g. ``"step 7"``) is added
        to the description of the work in error messages."""
        if len(tasks) != len(completions):
            raise ValueError(f"judge: {len(tasks)} tasks but {len(completions)} completions")
        if not tasks:
            return []
        first: dict[str, int] = {}
        for i, task in enumerate(tasks):
            first.setdefault(task.task_id, i)
        order = sorted(range(len(tasks)), key=lambda i: first[tasks[i].task_id])  # stable
        parts = split(len(order), self.pool.size, [tasks[i].task_id for i in order])
        calls, whats = [], []
        for part in parts:
            chunk = order[part.start : part.stop]
            calls.append((self.judge, [tasks[i] for i in chunk], [completions[i] for i in chunk]))
            whats.append(self._describe([tasks[i] for i in chunk], what))
        verdicts: list[Verdict | None] = [None] * len(tasks)
        results = self.pool.run("judge", calls, whats)
        for part, (chunk_verdicts, counts) in zip(parts, results, strict=True):
            for i, verdict in zip(order[part.start : part.stop], chunk_verdicts, strict=True):
                verdicts[i] = verdict
            for key, value in counts.items():
                self._counts[key] += value
        return verdicts  # every index is filled: the parts cover the batch

    def stats(self) -> dict[str, float]:
        """The judge's ``judge/...`` metrics over this object's batches since the last call."""
        return self._summarise(self.counts())

    def counts(self) -> dict[str, int]:
        """The counters behind ``stats`` since the last call to either; resets them."""
        out = self._counts
        self._counts = dict(self._zero)
        return out

    def summarise(self, counts: dict[str, int]) -> dict[str, float]:
        """``stats`` from ``counts``, or from the sum of several processes' counts."""
        return self._summarise(counts)

    def _describe(self, tasks: list[Task], what: str) -> str:
        ids = list(dict.fromkeys(task.task_id for task in tasks))
        which = ids[0] if len(ids) == 1 else f"{ids[0]} and {len(ids) - 1} more"
        context = f", {what}" if what else ""
        return (
            f"judging {len(tasks)} completions of {len(ids)} tasks ({which}) "
            f"with the {self.judge} judge{context}"
        )


class RayExecutor:
    """An executor for the programs environments, ``(code, expression) -> Result``: the
    sandbox of an actor in ``pool`` (``JudgeActor.run``), each call on the next actor.

    For processes that should fork no sandbox workers of their own (a training worker).
    Pickles by the pool's name, as ``datasets`` needs (it pickles a generator's closure,
    environments included); the actors are looked up on first use.
    """

    def __init__(self, pool: ActorPool):
        self.pool = pool

    def __call__(self, code: str, expression: str | None = None) -> Result:
        """``Sandbox.run(code, expression)`` in an actor; ActorTimeout past the pool's timeout."""
        head = code.strip().splitlines()[0][:60] if code.strip() else ""
        then = f", then {expression[:60]!r}" if expression is not None else ""
        what = f"running a program of {len(code)} characters ({head!r}...{then})"
        return self.pool.call("run", code, expression, what=what)

    def equip(self, env: Environment) -> Environment:
        """``env``, given this executor when it runs programs (has an ``executor`` unset); the
        counterpart of ``selfplay.sandbox.equip``."""
        if getattr(env, "executor", 0) is None:
            env.executor = self
        return env

    def __repr__(self) -> str:
        return f"RayExecutor({self.pool!r})"


class JudgeFactory:
    """``make_judge(name, envs)`` for the training workers of a launched run: a ``RayJudge``
    on the pool's actors. ``envs`` must be among those the actors were built with (they judge
    with their own copies). Pickles by the pool's name."""

    def __init__(self, pool: ActorPool, envs: Sequence[str]):
        self.pool, self.envs = pool, tuple(envs)

    def __call__(self, name: str, envs: dict[str, Environment]) -> RayJudge:
        missing = sorted(set(envs) - set(self.envs))
        if missing:
            raise ValueError(
                f"judge actors of pool {self.pool.name!r} have no environments {missing} "
                f"(they have {list(self.envs)})"
            )
        return RayJudge(self.pool, name)

    def close(self) -> None:
        """Kill the judge actors (in the process that started them, at the end of the run)."""
        self.pool.close()


def judge_factory(config, run_name: str) -> JudgeFactory:
    """Start the judge actors of a launched run (``config.resources``, over the environments
    and options of ``config.envs``), named after the run; the ``make_judge`` for its workers.
    The caller keeps the factory (and so the pool) referenced until the run ends."""
    envs = {name: dict(mix.options) for name, mix in config.envs.items()}
    pool = start_judges(envs, config.resources, name=f"{JUDGE_POOL}-{run_name}")
    return JudgeFactory(pool, list(envs))
