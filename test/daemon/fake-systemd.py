# A stand-in for systemd's side of the notify protocol (PID 1 here is not systemd): binds
# the datagram socket NOTIFY_SOCKET names, keeps the fds sent with FDSTORE=1 by FDNAME
# (FDSTOREREMOVE=1 drops them), prints every datagram as a JSON line {text, fds, pid, t}
# (pid: the sender's, from SCM_CREDENTIALS as systemd checks NotifyAccess; t: ms since the
# epoch), and on
# a line "spawn OUT ARGV-JSON" on stdin starts ARGV like systemd restarting a unit: the
# stored fds from 3 on, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID (= the child's pid),
# stdout+stderr to the file OUT. Prints {"spawned": PID}.
import array, json, os, socket, struct, subprocess, sys, threading, time

path = sys.argv[1]
store = {}  # name -> fd
lock = threading.Lock()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(path)
print(json.dumps({"bound": path}), flush=True)

def recv():
    while True:
        msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(4 * 16) + socket.CMSG_SPACE(12))
        fds = []
        pid = None
        for lvl, typ, data in anc:
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", data[:12])[0]
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[: len(data) - len(data) % 4])
                fds += list(a)
        text = msg.decode()
        fields = dict(l.split("=", 1) for l in text.strip().split("\n") if "=" in l)
        with lock:
            if fields.get("FDSTORE") == "1" and fds:
                old = store.pop(fields.get("FDNAME", "stored"), None)
                if old is not None:
                    os.close(old)
                store[fields.get("FDNAME", "stored")] = fds[0]
            if fields.get("FDSTOREREMOVE") == "1":
                old = store.pop(fields.get("FDNAME", "stored"), None)
                if old is not None:
                    os.close(old)
        links = [os.readlink(f"/proc/self/fd/{f}") for f in fds]
        print(json.dumps({"text": text, "fds": links, "stored": sorted(store), "pid": pid, "t": int(time.time() * 1000)}), flush=True)

threading.Thread(target=recv, daemon=True).start()
for line in sys.stdin:
    cmd, out, argv = line.rstrip("\n").split(" ", 2)
    if cmd != "spawn":
        continue
    with lock:
        items = sorted(store.items())
    names = [n for n, _ in items]
    fds = [f for _, f in items]
    def setup():
        for i, f in enumerate(fds):
            os.dup2(f, 3 + i)
    env = dict(os.environ, LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names), NOTIFY_SOCKET=path)
    argv = json.loads(argv)
    # LISTEN_PID must be the service's own pid: set by the shell that execs it.
    wrapped = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + argv
    o = open(out, "wb")
    p = subprocess.Popen(wrapped, stdout=o, stderr=o, env=env, preexec_fn=setup, pass_fds=tuple(range(3, 3 + len(fds))))
    print(json.dumps({"spawned": p.pid}), flush=True)
