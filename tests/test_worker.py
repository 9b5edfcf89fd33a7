"""The fork server (lmem/worker.py): a stage it runs gives what the stage gives in a process of its own, bit for bit;
failures reach the caller; a job whose import-time environment differs is not served. (The DAG runs through it in
tests/test_workflow.py, and tests/test_slurm.py compares those outputs byte for byte with the cluster's, whose
jobs run in processes of their own.)"""

import json
import os
import subprocess
import sys
import time

from conftest import OFFLINE_ENV, ROOT


def stage(args, env):
    return subprocess.run([sys.executable, "-m", "lmem.worker", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_served_stage_computes_as_one_in_its_own_process(tmp_path):
    sock = tmp_path / "socket"
    env = {k: v for k, v in OFFLINE_ENV.items() if k != "LMEM_WORKER"}
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "lmem.worker", "serve", str(sock), "--idle", "300"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # lmem.numerics hashes every output bit of the kernels training uses (forward, backward, AdamW): the
        # forked child computes them as a fresh process does, on the same thread count. The fresh process first,
        # while the server imports
        mem = {name: tmp_path / f"{name}.worker" for name in ("here", "served", "other")}
        here = stage(["--memory", str(mem["here"]), "lmem.numerics", "--out", str(tmp_path / "here.json"),
                      "--threads", "2"], env)
        deadline = time.time() + 120
        while not sock.exists() and server.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert sock.exists(), (tmp_path / "server.log").read_text()
        served_env = dict(env, LMEM_WORKER=str(sock))
        served = stage(["--memory", str(mem["served"]), "lmem.numerics", "--out", str(tmp_path / "served.json"),
                        "--threads", "2"], served_env)
        assert here.returncode == 0 and served.returncode == 0, here.stderr[-2000:] + served.stderr[-2000:]
        assert (tmp_path / "here.json").read_bytes() == (tmp_path / "served.json").read_bytes()
        assert not mem["here"].exists()  # no server: the stage ran in the client's process
        assert json.loads(mem["served"].read_text())["max_rss"] > 100  # the child's peak (MB), torch loaded
        # a failure: its exit status and its message reach the caller (the job's log)
        bad = stage(["lmem.numerics", "--threads", "two"], served_env)
        assert bad.returncode == 2 and "invalid int value: 'two'" in bad.stderr
        crash = stage(["lmem.run", "--data", str(tmp_path / "none.jsonl"), "--spec", "{}", "--k", "1", "--out",
                       str(tmp_path / "p.jsonl")], served_env)
        assert crash.returncode == 1 and "Traceback" in crash.stderr and "KeyError: 'seed'" in crash.stderr
        # other kernels asked for (a variable read when torch starts): not served, run in the client's process
        # (a served job leaves its memory file whatever its status; this one has none)
        other = stage(["--memory", str(mem["other"]), "lmem.numerics", "--threads", "two"],
                      dict(served_env, ATEN_CPU_CAPABILITY="default"))
        assert other.returncode == 2 and not mem["other"].exists(), other.stderr[-2000:]
        assert stage(["--memory", str(mem["other"]), "lmem.numerics", "--threads", "two"], served_env).returncode == 2
        assert mem["other"].exists()
        mem["other"].unlink()
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert not sock.exists()  # a stopped server removes its socket
    # a server gone: jobs run in their own processes
    gone = stage(["--memory", str(mem["other"]), "lmem.numerics", "--threads", "two"], served_env)
    assert gone.returncode == 2 and not mem["other"].exists()


def test_only_lmem_stages():
    out = stage(["os.path"], {k: v for k, v in os.environ.items() if k != "LMEM_WORKER"})
    assert out.returncode == 1 and "lmem.worker runs lmem's stages" in out.stderr
