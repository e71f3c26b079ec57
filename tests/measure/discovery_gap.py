#!/usr/bin/env python3
"""Gap between a cgroup's creation and its coverage by its own profile entry.

A process moved into the fresh cgroup right after its mkdir connects to 127.0.0.1:9 in a
loop until the kernel refuses (EPERM) instead of the port (ECONNREFUSED); the gap is
from the mkdir to that first EPERM. Root only; uses the cgroup2 mount at
/sys/fs/cgroup/unified (the development VMs' layout) and bpffs at /sys/fs/bpf.

    python3 tests/measure/discovery_gap.py target/debug/cgwarden MODE N

MODE: `watch` (inotify, the default agent), `walk` (`run --no-watch`: the 100 ms walk
only) or `parent` (selector `<base>/*`, covered by the parent entry from the start: the
harness's own floor, mostly the cost of moving a process into a cgroup).
"""
import os, sys, time, socket, subprocess, random, statistics, errno, tempfile, json
binary, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3]); sel = "*" if mode == "parent" else "c-*"
root = '/sys/fs/cgroup/unified'
base = f'cgw-gap-{os.getpid()}'
os.mkdir(f'{root}/{base}')
d = tempfile.mkdtemp()
open(f'{d}/p.yaml','w').write(f'name: gap\nmode: enforce\nselector:\n  cgroup: "/{base}/{sel}"\negress:\n  default: deny\n')
args = [binary, 'run', '--policy', f'{d}/p.yaml', '--events', f'{d}/ev', '--control', f'{d}/ctl.sock',
        '--state-dir', f'/sys/fs/bpf/{base}', '--no-metrics']
if mode == 'walk': args.append('--no-watch')
log = open(f'{d}/log','w')
agent = subprocess.Popen(args, stderr=log, env={**os.environ, 'RUST_LOG':'info'})
try:
    for _ in range(200):
        if 'cgwarden is enforcing' in open(f'{d}/log').read(): break
        time.sleep(0.05)
    gaps = []
    for i in range(n):
        time.sleep(random.uniform(0.05, 0.25))
        path = f'{root}/{base}/c-{i}'
        r, w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
          try:
            os.read(go_r, 1)
            start = time.monotonic()
            while True:
                s = socket.socket()
                e = s.connect_ex(('127.0.0.1', 9))
                s.close()
                if e == errno.EPERM:
                    os.write(w, str(time.monotonic()).encode()); os._exit(0)
                if time.monotonic() - start > 5:
                    os.write(w, b'-1'); os._exit(1)
          finally:
            os._exit(2)
        time.sleep(0.01)
        t0 = time.monotonic()
        os.mkdir(path)
        open(f'{path}/cgroup.procs','w').write(str(pid))
        os.write(go_w, b'x')
        os.waitpid(pid, 0)
        t1 = float(os.read(r, 64))
        os.close(r); os.close(w); os.close(go_r); os.close(go_w)
        os.rmdir(path)
        gaps.append((t1 - t0) * 1e3 if t1 > 0 else float('inf'))
    gaps.sort()
    print(json.dumps({'mode': mode, 'n': n, 'median_ms': round(statistics.median(gaps),2),
        'p90_ms': round(gaps[int(n*0.9)-1],2), 'max_ms': round(gaps[-1],2), 'min_ms': round(gaps[0],2)}))
finally:
    agent.terminate(); agent.wait()
    subprocess.run([binary, 'uninstall', '--state-dir', f'/sys/fs/bpf/{base}'], capture_output=True)
    os.rmdir(f'{root}/{base}')
