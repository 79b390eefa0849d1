"""20 simultaneous app users on mixed quick endpoints while one long job (Diagnostics) runs, through gradio_client.

    python -m tools.bench.concurrency [--root DIR] [--users 20] [--per-user 2] [--long diagnose|none] [--json OUT]

Two fresh app processes (``python app.py`` in ``--root``, default this clone; each with its own empty
``LIVR_VIZ_CACHE``, so no result is served from a cache of the other phase):

1. **serial**: every quick request of the workload once, one after another, then the long job alone: the reference
   answers and each request's time alone;
2. **concurrent**: the long job is submitted, and once it is running, ``--users`` clients each send ``--per-user``
   quick requests one after another (all users at once). Each request's *wait* is submit → result.

Before either phase times anything, every model of the trio answers one warm-up question that is not in the workload
(so model loading is not what is timed). Quick requests: Run (``/analyze``) on the trio, the layer × head grid, the
attention mask and a latent ablation, on distinct inputs (no request hits another's cache). Printed: whether all
succeeded, whether every answer equals its serial one (files compared by content, numbers to 6 digits), the
quick requests' median and worst wait, and the long job's time. To measure an older commit, serve a snapshot of it:
``git archive COMMIT | tar -x -C DIR`` and ``--root DIR`` (this script only talks HTTP to the app).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MODELS = ("demo-livr", "demo-latents-only", "demo-sft")
LATENT_MODELS = MODELS[:2]
DIAGNOSE_ARGS = (list(MODELS), "all", 5)  # the Diagnostics tab's defaults


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """``python app.py`` in ``root`` on a free port with an empty cache folder; stopped by :meth:`stop`."""

    def __init__(self, root: Path, scratch: Path, threads: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = scratch / f"app-{self.port}.log"
        env = {
            **os.environ,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "TQDM_DISABLE": "1",
            "LIVR_VIZ_WARM_UMAP": "0",
            "HF_HUB_OFFLINE": "1",
            "LIVR_VIZ_CACHE": str(scratch / f"cache-{self.port}"),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "app.py", "--port", str(self.port)], cwd=root, stdout=log, stderr=log, env=env
            )
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the app exited with {self.proc.returncode}; see {self.log}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit(f"the app did not answer within 300 s; see {self.log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def workload(users: int, per_user: int, scratch: Path) -> list[list[tuple[str, tuple]]]:
    """``[user][j] = (api_name, args)``: distinct inputs, endpoints and models mixed across users and turns."""
    from gradio_client import handle_file

    from livr_viz.data import make_sample, task_names

    tasks = task_names()
    out = []
    for i in range(users):
        calls = []
        for j in range(per_user):
            s = make_sample(tasks[(i + j) % len(tasks)], "test", 4242, users * j + i)
            path = scratch / f"{s.id}.png"
            s.image.save(path)
            image, kind = handle_file(str(path)), (i + j) % 4
            if kind == 0:
                args = (MODELS[i % 3], image, s.prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
                calls.append(("/analyze", args))
            elif kind == 1:
                calls.append(("/layer_head_grid", (LATENT_MODELS[i % 2], image, s.prompt, "full")))
            elif kind == 2:
                calls.append(("/mask", (MODELS[i % 3], image, s.prompt, "full")))
            else:
                calls.append(("/ablation", (LATENT_MODELS[i % 2], image, s.prompt, "full", ["0"], "zero", -1)))
        out.append(calls)
    return out


def fingerprint(value):
    """A comparable form of an answer: files by the SHA-1 of their bytes, floats to 6 digits, the rest as is."""
    if isinstance(value, dict):
        return {k: fingerprint(v) for k, v in value.items() if k not in ("url", "path", "orig_name")} | (
            {"file": fingerprint(value["path"])} if isinstance(value.get("path"), str) else {}
        )
    if isinstance(value, list | tuple):
        return [fingerprint(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str) and len(value) < 4096 and os.path.isfile(value):
        return "sha1:" + hashlib.sha1(Path(value).read_bytes()).hexdigest()
    return value


def warm_up(client, scratch: Path) -> None:
    """One question to each model of the trio (loads it), on an input the workload does not use."""
    from gradio_client import handle_file

    from livr_viz.data import make_sample

    s = make_sample("counting", "val", 99, 0)
    path = scratch / f"warm-{s.id}.png"
    s.image.save(path)
    for model in MODELS:
        args = (model, handle_file(str(path)), s.prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
        client.predict(*args, api_name="/analyze")


def serial_phase(app: App, calls: list[list[tuple[str, tuple]]], long: bool, scratch: Path) -> dict:
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    warm_up(client, scratch)
    answers, alone = {}, {}
    for i, user in enumerate(calls):
        for j, (api, args) in enumerate(user):
            t0 = time.perf_counter()
            answers[i, j] = fingerprint(client.predict(*args, api_name=api))
            alone[i, j] = time.perf_counter() - t0
    out = {"answers": answers, "alone_s": alone}
    if long:
        t0 = time.perf_counter()
        out["long_answer"] = fingerprint(client.predict(*DIAGNOSE_ARGS, api_name="/diagnose"))
        out["long_s"] = time.perf_counter() - t0
    return out


def concurrent_phase(app: App, calls: list[list[tuple[str, tuple]]], long: bool, scratch: Path) -> dict:
    from gradio_client import Client

    warm_up(Client(app.url, verbose=False), scratch)
    clients = [Client(app.url, verbose=False) for _ in calls]
    answers, waits, errors = {}, {}, []
    long_out: dict = {}

    def long_job():
        t0 = time.perf_counter()
        try:
            client = Client(app.url, verbose=False)
            long_out["answer"] = fingerprint(client.predict(*DIAGNOSE_ARGS, api_name="/diagnose"))
        except Exception as exc:  # noqa: BLE001 - counted, reported
            errors.append(f"/diagnose: {exc!r}")
        long_out["s"] = time.perf_counter() - t0

    def user(i: int):
        for j, (api, args) in enumerate(calls[i]):
            t0 = time.perf_counter()
            try:
                answers[i, j] = fingerprint(clients[i].predict(*args, api_name=api))
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(f"{api}: {exc!r}")
            waits[i, j] = time.perf_counter() - t0

    threads = []
    if long:
        threads.append(threading.Thread(target=long_job))
        threads[0].start()
        time.sleep(3.0)  # the diagnosis is under way before the quick requests arrive
    t_users = time.perf_counter()
    threads += [threading.Thread(target=user, args=(i,)) for i in range(len(calls))]
    for t in threads[1 if long else 0 :]:
        t.start()
    for t in threads:
        t.join(timeout=1800)
    return {
        "answers": answers,
        "waits_s": waits,
        "errors": errors,
        "users_wall_s": time.perf_counter() - t_users,
        "long_answer": long_out.get("answer"),
        "long_s": long_out.get("s"),
    }


def run(root: Path, users: int, per_user: int, long: bool, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="livr-bench-concurrency-") as tmp:
        scratch = Path(tmp)
        calls = workload(users, per_user, scratch)
        load_before = os.getloadavg()
        app = App(root, scratch, threads)
        try:
            serial = serial_phase(app, calls, long, scratch)
        finally:
            app.stop()
        app = App(root, scratch, threads)
        try:
            conc = concurrent_phase(app, calls, long, scratch)
        finally:
            app.stop()
    waits = sorted(conc["waits_s"].values())
    alone = sorted(serial["alone_s"].values())
    same = [key for key in serial["answers"] if conc["answers"].get(key) == serial["answers"][key]]
    differ = sorted({calls[i][j][0] for (i, j) in serial["answers"] if (i, j) not in same})
    return {
        "root": str(root),
        "users": users,
        "per_user": per_user,
        "long_job": "diagnose (trio, all tasks, 5 per task)" if long else None,
        "app_threads": threads,
        "all_succeeded": not conc["errors"],
        "errors": conc["errors"][:5],
        "n_quick": len(waits),
        "identical_to_serial": f"{len(same)}/{len(serial['answers'])}",
        "differing_endpoints": differ,
        "long_identical_to_serial": (conc["long_answer"] == serial.get("long_answer")) if long else None,
        "quick_alone_median_s": round(statistics.median(alone), 2),
        "quick_wait_median_s": round(statistics.median(waits), 2),
        "quick_wait_max_s": round(max(waits), 2),
        "users_wall_s": round(conc["users_wall_s"], 1),
        "long_alone_s": round(serial["long_s"], 1) if long else None,
        "long_concurrent_s": round(conc["long_s"], 1) if long and conc["long_s"] else None,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.concurrency",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose app.py is served")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--per-user", type=int, default=2, help="quick requests per user, one after another")
    parser.add_argument("--long", choices=("diagnose", "none"), default="diagnose", help="the long job beside them")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of the app process")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(Path(args.root).resolve(), args.users, args.per_user, args.long != "none", args.threads)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
