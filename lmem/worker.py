"""A fork server for the DAG's Python stages, so that a local run imports torch and transformers once, not per job.

Each job of the DAG is a fresh Python process, and on a CPU most of a short job is start-up: importing torch and
transformers' model code takes about 4.6 s here (2 cores), against 2-4 s of actual work in a small `run_method` job,
and a `score` job imports them too (through `evaluate`), for 0.1 s of work.
In a local run (`worker: true`, the default) the Snakefile's `onstart` starts one server
(`python -m lmem.worker serve SOCKET`) that imports those modules once and waits. A job's command is
`python -m lmem.worker lmem.run ARGS`; this client imports nothing heavy and hands the server its arguments,
working folder, environment and its stdout and stderr (as file descriptors: the job's log gets every byte the stage
writes); the server forks a child that runs `lmem.run`'s `main(ARGS)` exactly as `python -m lmem.run ARGS` would, and
the client exits with the child's exit status. Every job still gets a process of its own: a child starts from the
server's state after the imports (no model, no random state, nothing of an earlier job), and it is killed when its
client is (Snakemake cancelling a job).

The client runs the stage itself, in its own process (what `python -m lmem.run ARGS` does), when there is no server:
LMEM_WORKER unset (a remote executor such as SLURM, `worker: false`, a command typed by hand), the socket gone, or
the server refusing because the job's Python or an environment variable read at import time (kernels, threads,
device, offline mode: IMPORT_TIME_ENV) differs from the server's. The server never starts CUDA (a forked child
could not use it); each GPU job starts its own, and if importing the stages ever did, the server serves no job.

Peak memory: Snakemake's `benchmark:` measures the job's own processes, here the light client, so a served job's
client writes its child's peak resident memory to `--memory FILE` (the rules name `<benchmark file>.worker`), and
lmem.timings reports the larger of the two.

Usage: python -m lmem.worker serve SOCKET [--parent PID] [--idle S]
       python -m lmem.worker [--memory FILE] MODULE ARGS...   (MODULE: an lmem stage with main(argv): lmem.run, ...)
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from lmem.io import write_json

ENV_VAR = "LMEM_WORKER"
# what the server imports once (then each child re-imports nothing): the model stages' modules, then scoring (its
# metrics load through `evaluate`, which imports transformers' pipelines: 4.7 s of a score job's 6.9 here) and the
# report's three modules (matplotlib and pandas; the kernel fingerprint's torch)
PRELOAD = ("lmem.run", "lmem.index", "lmem.corpus", "lmem.train_compressor", "lmem.train_xrag", "lmem.train_vision",
           "lmem.score", "evaluate", "lmem.report", "lmem.timings", "lmem.numerics")
# environment variables whose values are read when torch, MKL, oneDNN, OpenMP, transformers or lmem's baselines are
# imported or first used: a job whose values differ from the server's runs in its own process instead
IMPORT_TIME_ENV = ("ATEN_", "MKL_", "ONEDNN_", "DNNL_", "OMP_", "KMP_", "GOMP_", "CUDA_", "PYTORCH_", "TORCH_", "HF_",
                   "TRANSFORMERS_", "LMEM_", "PYTHON", "LD_", "VIRTUAL_ENV", "CONDA_PREFIX")
HEADER = struct.Struct("!Q")


def memory_file(benchmark: str | os.PathLike) -> str:
    """Where a served job's child's peak memory goes: beside the job's Snakemake benchmark file (lmem.timings)."""
    return f"{benchmark}.worker"


def import_time_env(env: dict) -> dict:
    """The variables of `env` that must be the server's. Not the thread counts Snakemake sets per job
    (OMP_NUM_THREADS, MKL_NUM_THREADS, ...): a child sets its thread count from them, as a fresh process would."""
    return {k: v for k, v in env.items()
            if k.startswith(IMPORT_TIME_ENV) and k != ENV_VAR and not k.endswith("_NUM_THREADS")}


def _send(conn: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    msg = HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(conn, [msg], fds)
    else:
        conn.sendall(msg)


def _recv(conn: socket.socket, nfds: int = 0) -> tuple[dict, list[int]]:
    buf, fds = b"", []
    if nfds:
        buf, fds, _, _ = socket.recv_fds(conn, 1 << 16, nfds)
    while len(buf) < HEADER.size or len(buf) < HEADER.size + HEADER.unpack(buf[:HEADER.size])[0]:
        chunk = conn.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the other side closed the connection mid-message")
        buf += chunk
    n = HEADER.unpack(buf[:HEADER.size])[0]
    return json.loads(buf[HEADER.size:HEADER.size + n]), fds


def python_identity() -> list[str]:
    """Which Python this is: `python` and `python3` of one installation are the same, a venv or conda env another."""
    return [os.path.realpath(sys.executable), sys.prefix, sys.version]


# -- the client: one job ------------------------------------------------------------------------------------------
def _ready(path: str, wait: float = 60.0) -> bool:
    """Is the server at `path` there? A job that starts while the server is still importing (its first seconds)
    waits for it, as long as its process lives (`pid` beside the socket)."""
    folder = os.path.dirname(path)
    deadline = time.time() + wait
    while not os.path.exists(path):
        try:
            pid = int(Path(folder, "pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):  # no server folder, no pid, or the server is gone
            return False
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def served(module: str, args: list[str]) -> dict | None:
    """`module`'s main(args) run by the server: {"status": exit status, "max_rss": the child's peak resident memory,
    MB}; or None when there is no server to run it (or it refuses): the caller then runs it itself."""
    path = os.environ.get(ENV_VAR)
    if not path or not _ready(path):
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            conn.connect(path)
            _send(conn, {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ),
                         "python": python_identity()}, [sys.stdout.fileno(), sys.stderr.fileno()])
        except OSError:  # the server gone (its run ended, or it was killed) before it took the job: it runs here
            return None
        try:
            reply, _ = _recv(conn)
        except OSError:  # it took the job and went away: the job may have half run, so it fails (no second run)
            print(f"lmem.worker: the server at {path} stopped while it ran {module}; rerun the job",
                  file=sys.stderr)
            return {"status": 1, "max_rss": None}
    finally:
        conn.close()
    if "refused" in reply:
        print(f"lmem.worker: not served ({reply['refused']}); running {module} in this process", file=sys.stderr)
        return None
    return reply


def run_here(module: str, args: list[str]) -> int:
    """`module`'s main(args), as `python -m module args` runs it: its exit status."""
    sys.argv = [module, *args]
    try:
        importlib.import_module(module).main(args)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    return 0


def client(module: str, args: list[str], memory: str | None = None) -> int:
    if not module.startswith("lmem."):
        raise SystemExit(f"lmem.worker runs lmem's stages (lmem.run, lmem.index, ...), not {module!r}")
    if memory and os.path.exists(memory):
        os.unlink(memory)  # an earlier served run's; this one may run here
    reply = served(module, args)
    if reply is None:
        return run_here(module, args)
    if memory and reply["max_rss"] is not None:
        write_json(memory, {"max_rss": reply["max_rss"]})
    return int(reply["status"])


# -- the server -----------------------------------------------------------------------------------------------------
def _child(request: dict, fds: list[int], close: list[socket.socket]) -> None:
    """In the forked child: become the job (its stdout/stderr, folder, environment, argv), run it, exit."""
    status = 1
    try:
        for s in close:
            s.close()
        try:  # Linux: die with the server, never run on as an orphan beside a job its client would rerun
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # what a fresh process reads at start-up
            import torch

            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        status = run_here(request["module"], request["args"])
    except BaseException:  # noqa: BLE001 - whatever the stage raised, as Python would print it
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def serve(path: str, parent: int | None = None, idle: float = 3600.0) -> None:
    """Import the stages, listen on the unix socket `path`, fork a child per job until told to stop (SIGTERM), the
    process that started it is gone (`parent`), or `idle` seconds pass with no job."""
    for module in PRELOAD:
        importlib.import_module(module)
    import torch

    # a forked child cannot use a CUDA the parent started: if importing did, every job runs in its own process
    cuda_started = torch.cuda.is_initialized()
    own_env = import_time_env(dict(os.environ))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, path)  # the socket appears only once the server is ready
    children: dict[int, socket.socket] = {}
    last = time.time()
    print(f"lmem.worker: serving on {path} (pid {os.getpid()})", flush=True)
    try:
        while not stop and (parent is None or os.getppid() == parent) and (children or time.time() - last < idle):
            readable, _, _ = select.select([listener, *children.values()], [], [], 0.5)
            for s in readable:
                if s is listener:
                    conn, _ = listener.accept()
                    last = time.time()
                    conn.settimeout(30)  # a client that connects and sends nothing does not stall the others
                    try:
                        request, fds = _recv(conn, 2)
                    except (OSError, ValueError):
                        conn.close()
                        continue
                    conn.settimeout(None)
                    differs = sorted(k for k in set(own_env) | set(import_time_env(request["env"]))
                                     if own_env.get(k) != request["env"].get(k))
                    why = ("another Python" if request.get("python") != python_identity() else
                           f"environment differs: {differs}" if differs else
                           "CUDA started in the server" if cuda_started else
                           f"{len(fds)} file descriptors sent, not the job's stdout and stderr" if len(fds) != 2 else
                           None)
                    if why:
                        print(f"lmem.worker: refused {request.get('module')} {request.get('args')}: {why}", flush=True)
                        _send(conn, {"refused": why})
                        conn.close()
                        for fd in fds:
                            os.close(fd)
                        continue
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(request, fds, [listener, conn, *children.values()])
                    for fd in fds:
                        os.close(fd)
                    children[pid] = conn
                else:  # a client's end became readable: it closed (killed, cancelled), so its job is killed
                    pid = next(p for p, c in children.items() if c is s)
                    os.kill(pid, signal.SIGKILL)
            while children:  # finished children: their exit status to their clients
                pid, status, usage = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = children.pop(pid)
                last = time.time()
                try:  # ru_maxrss: KB on Linux
                    _send(conn, {"status": os.waitstatus_to_exitcode(status),
                                 "max_rss": round(usage.ru_maxrss / 1024, 1)})
                except OSError:
                    pass
                conn.close()
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


# -- what the Snakefile calls ---------------------------------------------------------------------------------------
class Server:
    """A server started for one Snakemake run (its `onstart`), stopped at the end (`onsuccess` / `onerror`)."""

    def __init__(self, log: str | os.PathLike):
        self.dir = tempfile.mkdtemp(prefix="lmem-worker-")  # short: a unix socket's path has at most 107 bytes
        self.path = os.path.join(self.dir, "socket")
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "lmem.worker", "serve", self.path, "--parent",
                                          str(os.getpid())], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        Path(self.dir, "pid").write_text(f"{self.proc.pid}\n")
        os.environ[ENV_VAR] = self.path  # the jobs' environment: they look for the socket there

    def stop(self) -> None:
        os.environ.pop(ENV_VAR, None)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv else 2)
    if argv[0] == "serve":
        import argparse

        ap = argparse.ArgumentParser(prog="python -m lmem.worker serve")
        ap.add_argument("socket")
        ap.add_argument("--parent", type=int, default=None)
        ap.add_argument("--idle", type=float, default=3600.0)
        a = ap.parse_args(argv[1:])
        serve(a.socket, a.parent, a.idle)
        return
    memory = None
    if argv[0] == "--memory" and len(argv) > 2:
        memory, argv = argv[1], argv[2:]
    raise SystemExit(client(argv[0], argv[1:], memory))


if __name__ == "__main__":
    main()
