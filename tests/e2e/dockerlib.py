"""Docker plumbing for sluice's end-to-end tests and the inline benchmark:
start dockerd, build the test images locally (no image registry), run
containers and networks under unique names, run sluiced, and always clean up,
also after a failure, Ctrl-C or an earlier run that crashed.

Everything created here is named with PREFIX and labelled LABEL, so a later
run can find and remove what a crashed run left."""
import atexit
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "sluice-e2e-"
LABEL = "sluice-e2e=1"
DEBIAN_IMAGE = "sluice-test-debian"
BUSYBOX_IMAGE = "sluice-test-busybox"
CACHE = os.environ.get("SLUICE_TEST_CACHE", "/var/cache/sluice-test")
DEBIAN_PKGS = "curl,ca-certificates,openssl,python3-minimal,iperf3"
# What the tests run inside each image; an image lacking one is not used.
DEBIAN_NEEDS = ["curl", "python3", "iperf3", "sha256sum", "sleep"]
# The benchmarks' image adds a load generator and a fast HTTP server to it.
BENCH_IMAGE = "sluice-bench-debian"
BENCH_DEBS = ["nginx", "wrk", "libluajit-5.1-2", "libluajit-5.1-common"]
BENCH_NEEDS = DEBIAN_NEEDS + ["wrk", "nginx"]
# HTTP/2 and gRPC: nghttpd, h2load, Python's grpcio and h2, with what they need
# beyond the test image.
H2_IMAGE = "sluice-h2-debian"
H2_TOP_DEBS = ["nghttp2-server", "nghttp2-client", "python3-grpcio", "python3-h2"]
H2_NEEDS = DEBIAN_NEEDS + ["nghttpd", "h2load"]
BUSYBOX_APPLETS = ["sh", "httpd", "sleep", "nc", "wget", "cat", "ls", "mkdir", "sha256sum",
                   "head", "dd", "rm", "echo", "kill"]
# Process ids of the sluiced instances a run started, so the next run can
# stop them if this one was killed before it could.
STATE_DIR = "/run/sluice-e2e"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")

RUN_ID = uuid.uuid4().hex[:8]
_cleanups = []


def log(msg):
    print(f"  {msg}", file=sys.stderr, flush=True)


class Error(Exception):
    pass


def run(cmd, check=True, timeout=120, input=None, quiet=False):
    """Runs a command; returns CompletedProcess with text stdout/stderr."""
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Error(f"timed out after {timeout} s: {' '.join(cmd)}")
    p.stdout = p.stdout.decode(errors="replace")
    p.stderr = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        raise Error(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


def docker(*args, **kw):
    return run(["docker", *args], **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- cleanup ------------------------------------------------------------------

def on_cleanup(fn):
    """Registers fn to run at cleanup (last registered runs first)."""
    _cleanups.append(fn)
    return fn


def cleanup():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning the rest
            log(f"cleanup: {e}")


def _on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def install_cleanup():
    """Runs cleanup() at exit, also on SIGINT/SIGTERM/SIGHUP."""
    atexit.register(cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def sluiced_pids():
    """Every running process whose executable is named sluiced."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() == "sluiced" and _alive(int(d)):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def remove_leftovers():
    """Removes what an earlier run of this suite left: containers, networks,
    sluiced processes it started, and then SLUICE iptables chains if no
    sluiced is left to own them."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
    ids += docker("ps", "-aq", "--filter", f"name={PREFIX}").stdout.split()
    if ids:
        log(f"removing {len(set(ids))} leftover containers")
        docker("rm", "-f", "-v", *sorted(set(ids)), check=False)
    nets = [n for n in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
            if n.startswith(PREFIX)]
    if nets:
        log(f"removing leftover networks {nets}")
        docker("network", "rm", *nets, check=False)
    ours = False
    if os.path.isdir(STATE_DIR):
        for name in os.listdir(STATE_DIR):
            ours = True
            if name.endswith(".pid"):
                try:
                    pid = int(open(os.path.join(STATE_DIR, name)).read())
                    # The pid may have been reused: ours (sluiced, the host's
                    # server) run on files in our temp dirs.
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                    if PREFIX.encode() in cmd:
                        what = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
                        log(f"stopping leftover process {pid}: {what}")
                        _stop_pid(pid)
                except (ValueError, OSError):
                    pass
                os.unlink(os.path.join(STATE_DIR, name))
    for d in os.listdir(tempfile.gettempdir()):
        if d.startswith(PREFIX):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), d), ignore_errors=True)
    # Only rules a sluiced of ours left (killed with the run): another
    # sluiced's rules are not ours to touch.
    if ours and sluice_rule_count() and not sluiced_pids():
        log("removing SLUICE iptables rules left by a sluiced this suite started")
        flush_sluice_rules()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_pid(pid, timeout=15):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.time() + timeout
    while time.time() < end and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def remember_pid(pid):
    """Notes a process of ours for remove_leftovers() of a later run."""
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(os.path.join(STATE_DIR, f"{pid}.pid"), "w") as f:
        f.write(str(pid))


def forget_pid(pid):
    try:
        os.unlink(os.path.join(STATE_DIR, f"{pid}.pid"))
    except OSError:
        pass


# --- iptables -----------------------------------------------------------------

def sluice_rule_lines(family=4):
    """The iptables-save lines (chains and rules, every table) naming SLUICE."""
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    p = run([tool], check=False)
    return [line for line in p.stdout.splitlines() if "SLUICE" in line]


def sluice_rule_count():
    return len(sluice_rule_lines(4)) + len(sluice_rule_lines(6))


def flush_sluice_rules():
    for family, tool in ((4, "iptables"), (6, "ip6tables")):
        table = None
        chains = []
        for line in run([f"{tool}-save"], check=False).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and "SLUICE" in line:
                chain = line.split()[1]
                if not chain.startswith("SLUICE"):
                    run([tool, "-t", table, "-D", *line.split()[1:]], check=False)
            elif line.startswith(":SLUICE"):
                chains.append((table, line[1:].split()[0]))
        for table, chain in chains:
            run([tool, "-t", table, "-F", chain], check=False)
        for table, chain in chains:
            run([tool, "-t", table, "-X", chain], check=False)


# --- dockerd and images -------------------------------------------------------

def ensure_dockerd(timeout=90):
    if run(["docker", "info"], check=False, timeout=30).returncode == 0:
        return
    if not shutil.which("dockerd"):
        raise Error("docker is not installed (apt-get install docker.io)")
    log("starting dockerd")
    with open("/var/log/dockerd.log", "ab") as out:
        subprocess.Popen(["dockerd", "--storage-driver=vfs"], stdin=subprocess.DEVNULL,
                         stdout=out, stderr=out, start_new_session=True)
    end = time.time() + timeout
    while time.time() < end:
        if run(["docker", "info"], check=False, timeout=30).returncode == 0:
            return
        time.sleep(1)
    tail = open("/var/log/dockerd.log", errors="replace").read()[-1500:]
    raise Error(f"dockerd did not come up in {timeout} s:\n{tail}")


def image_exists(name):
    return docker("image", "inspect", name, check=False, quiet=True).returncode == 0


def debian_mirror():
    """The Debian mirror this machine's apt uses (one-line or deb822 sources)."""
    files = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    for path in files:
        try:
            text = open(path).read()
        except OSError:
            continue
        for m in re.finditer(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split() \
                    and "security" not in uris.group(1):
                return uris.group(1)
    return "http://deb.debian.org/debian"


def image_has(image, commands):
    script = " && ".join(f"command -v {c} >/dev/null" for c in commands)
    p = docker("run", "--rm", "--network", "none", "--label", LABEL, image, "sh", "-c", script,
               check=False, timeout=60)
    return p.returncode == 0


def ensure_debian_image(image=DEBIAN_IMAGE, pkgs=DEBIAN_PKGS, needs=DEBIAN_NEEDS):
    """sluice-test-debian (debootstrap minbase), built once per machine from a
    cached root file system tarball. Returns the image name to use."""
    ok = image_exists(image) and image_has(image, needs) and \
        docker("run", "--rm", "--network", "none", image, "python3", "-c",
               "import socket, threading, zlib, hashlib, select", check=False).returncode == 0
    if ok:
        return image
    name = image
    if image_exists(image):
        # Someone else's image of that name without our tools: leave it alone.
        name = image.replace("sluice-", "sluice-e2e-", 1)
        if image_exists(name) and image_has(name, needs):
            return name
    os.makedirs(CACHE, exist_ok=True)
    key = hashlib.sha256(f"bookworm minbase {pkgs}".encode()).hexdigest()[:12]
    tarball = os.path.join(CACHE, f"debian-bookworm-{key}.tar")
    start = time.time()
    if not os.path.exists(tarball):
        if not shutil.which("debootstrap"):
            raise Error("debootstrap is not installed (apt-get install debootstrap)")
        root = tempfile.mkdtemp(prefix=PREFIX + "rootfs-")
        try:
            mirror = debian_mirror()
            log(f"debootstrap bookworm from {mirror} (once per machine)")
            p = run(["debootstrap", "--variant=minbase", f"--include={pkgs}", "bookworm",
                     root, mirror], check=False, timeout=900)
            if p.returncode != 0:
                raise Error("debootstrap failed:\n" + (p.stdout + p.stderr)[-2000:])
            # apt caches are not needed in the image.
            shutil.rmtree(os.path.join(root, "var/cache/apt/archives"), ignore_errors=True)
            run(["tar", "-C", root, "-cf", tarball + ".tmp", "."], timeout=300)
            os.rename(tarball + ".tmp", tarball)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    with open(tarball, "rb") as f:
        p = subprocess.run(["docker", "import", "-", name], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        raise Error(f"docker import failed: {p.stderr.decode()[-500:]}")
    log(f"image {name} ready in {time.time() - start:.0f} s")
    if not image_has(name, needs):
        raise Error(f"image {name} lacks one of {needs}")
    return name


def ensure_bench_image():
    """sluice-bench-debian: the test image plus wrk and nginx, unpacked from
    their Debian packages without running their maintainer scripts (nginx's
    would start a server), as a layer committed on the test image."""
    if image_exists(BENCH_IMAGE) and image_has(BENCH_IMAGE, BENCH_NEEDS):
        return BENCH_IMAGE
    base = ensure_debian_image()
    work = tempfile.mkdtemp(prefix=PREFIX + "bench-image-")
    cid = None
    try:
        p = subprocess.run(["apt-get", "download", *BENCH_DEBS], cwd=work,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise Error(f"apt-get download {' '.join(BENCH_DEBS)}: {p.stderr.strip()[-500:]}")
        root = os.path.join(work, "root")
        for deb in sorted(f for f in os.listdir(work) if f.endswith(".deb")):
            run(["dpkg-deb", "-x", os.path.join(work, deb), root])
        for d in ("var/lib/nginx", "var/log/nginx"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        cid = docker("create", "--label", LABEL, base, "true").stdout.strip()
        docker("cp", root + "/.", f"{cid}:/", timeout=300)
        docker("commit", cid, BENCH_IMAGE, timeout=300)
    finally:
        if cid:
            docker("rm", "-f", cid, check=False)
        shutil.rmtree(work, ignore_errors=True)
    if not image_has(BENCH_IMAGE, BENCH_NEEDS):
        raise Error(f"image {BENCH_IMAGE} lacks one of {BENCH_NEEDS}")
    return BENCH_IMAGE


def _debs_closure(top, base):
    """The packages top needs (Depends, recursively) that image base lacks."""
    p = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
             "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *top])
    want = {line.strip() for line in p.stdout.splitlines()
            if line and not line.startswith(" ") and "<" not in line}
    have = docker("run", "--rm", "--network", "none", "--label", LABEL, base, "dpkg-query", "-W",
                  "-f", "${Package}\\n").stdout.split()
    return sorted(want - {h.split(":")[0] for h in have})


def ensure_h2_image():
    """sluice-h2-debian: the test image plus nghttpd, h2load, python3-grpcio
    and python3-h2 with what they depend on, unpacked from their Debian packages
    without maintainer scripts, as a layer committed on the test image."""
    probe = "import grpc, h2.connection"
    if image_exists(H2_IMAGE) and image_has(H2_IMAGE, H2_NEEDS) and \
            docker("run", "--rm", "--network", "none", H2_IMAGE, "python3", "-c", probe,
                   check=False).returncode == 0:
        return H2_IMAGE
    base = ensure_debian_image()
    work = tempfile.mkdtemp(prefix=PREFIX + "h2-image-")
    cid = None
    try:
        debs = _debs_closure(H2_TOP_DEBS, base)
        p = subprocess.run(["apt-get", "download", *debs], cwd=work, capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0:
            raise Error(f"apt-get download {' '.join(debs)}: {p.stderr.strip()[-500:]}")
        root = os.path.join(work, "root")
        for deb in sorted(f for f in os.listdir(work) if f.endswith(".deb")):
            run(["dpkg-deb", "-x", os.path.join(work, deb), root])
        # The image's /lib and /bin are links into /usr (merged /usr).
        for d in ("bin", "sbin", "lib", "lib64"):
            top = os.path.join(root, d)
            if os.path.isdir(top) and not os.path.islink(top):
                run(["cp", "-a", top + "/.", os.path.join(root, "usr", d)])
                shutil.rmtree(top)
        cid = docker("create", "--label", LABEL, base, "true").stdout.strip()
        docker("cp", root + "/.", f"{cid}:/", timeout=300)
        docker("commit", cid, H2_IMAGE, timeout=300)
    finally:
        if cid:
            docker("rm", "-f", cid, check=False)
        shutil.rmtree(work, ignore_errors=True)
    if not image_has(H2_IMAGE, H2_NEEDS) or \
            docker("run", "--rm", "--network", "none", H2_IMAGE, "python3", "-c", probe,
                   check=False).returncode != 0:
        raise Error(f"image {H2_IMAGE} lacks one of {H2_NEEDS} or Python's grpc and h2")
    return H2_IMAGE


def ensure_busybox_image():
    """sluice-test-busybox: the static busybox and its applets. Returns the
    image name to use."""
    if image_exists(BUSYBOX_IMAGE) and image_has(BUSYBOX_IMAGE, ["httpd", "nc", "sleep"]):
        return BUSYBOX_IMAGE
    name = BUSYBOX_IMAGE
    if image_exists(BUSYBOX_IMAGE):
        name = "sluice-test-e2e-busybox"
        if image_exists(name) and image_has(name, ["httpd", "nc", "sleep"]):
            return name
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
    if not busybox:
        raise Error("no busybox (apt-get install busybox-static)")
    root = tempfile.mkdtemp(prefix=PREFIX + "busybox-")
    try:
        for d in ("bin", "www", "tmp", "etc"):
            os.makedirs(os.path.join(root, d))
        shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
        for applet in BUSYBOX_APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        with open(os.path.join(root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/:/bin/sh\n")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        p = subprocess.run(["docker", "import", "-c", "ENV PATH=/bin", "-", name],
                           stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        tar.wait()
        if p.returncode != 0:
            raise Error(f"docker import failed: {p.stderr.decode()[-500:]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not image_has(name, ["httpd", "nc", "sleep"]):
        raise Error(f"image {name} does not run {busybox} (is it busybox-static?)")
    return name


# --- containers and networks -----------------------------------------------------

def unique(role):
    return f"{PREFIX}{RUN_ID}-{role}"


class Container:
    def __init__(self, name, cid):
        self.name = name
        self.id = cid

    def inspect(self, fmt):
        return docker("inspect", "-f", fmt, self.id).stdout.strip()

    def ip(self, network=None):
        if network:
            return self.inspect("{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network)
        return self.inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}").split()[0]

    def exec(self, *cmd, check=False, timeout=300):
        return docker("exec", self.id, *cmd, check=check, timeout=timeout)

    def popen(self, *cmd):
        return subprocess.Popen(["docker", "exec", self.id, *cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def logs(self):
        p = docker("logs", "--tail", "40", self.id, check=False)
        return (p.stdout + p.stderr).strip()

    def remove(self):
        docker("rm", "-f", "-v", self.id, check=False, timeout=60)


def start_container(role, image, cmd, network=None, volumes=(), env=(), workdir=None, extra=()):
    """docker run -d under a unique name; removed at cleanup. extra: more
    docker run options (--sysctl, --ulimit)."""
    name = unique(role)
    args = ["run", "-d", "--name", name, "--label", LABEL, "--init", *extra]
    if network:
        args += ["--network", network]
    for host, inside in volumes:
        args += ["-v", f"{host}:{inside}"]
    for e in env:
        args += ["-e", e]
    if workdir:
        args += ["-w", workdir]
    # --init is in the docker.io package (docker-init); without it a busybox
    # or python process as PID 1 would ignore SIGTERM.
    p = docker(*args, image, *cmd, check=False)
    if p.returncode != 0 and "docker-init" in p.stderr:
        args.remove("--init")
        p = docker(*args, image, *cmd, check=False)
    if p.returncode != 0:
        raise Error(f"docker run {name}: {p.stderr.strip()}")
    c = Container(name, p.stdout.strip())
    on_cleanup(c.remove)
    if c.inspect("{{.State.Running}}") != "true":
        raise Error(f"container {name} exited at once: {c.logs()}")
    return c


def create_network(role):
    name = unique(role)
    docker("network", "create", "--label", LABEL, name)
    on_cleanup(lambda: docker("network", "rm", name, check=False))
    return name


def docker0_ip():
    p = run(["ip", "-4", "-o", "addr", "show", "docker0"], check=False)
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)", p.stdout)
    return m.group(1) if m else "172.17.0.1"


def wait_port(container, host, port, timeout=20):
    """Waits until a TCP port answers, seen from inside the container."""
    probe = (f"import socket,time,sys\nend=time.time()+{timeout}\n"
             f"while time.time()<end:\n"
             f"  try:\n    socket.create_connection(('{host}',{port}),1).close(); sys.exit(0)\n"
             f"  except OSError: time.sleep(0.2)\nsys.exit(1)\n")
    p = container.exec("python3", "-c", probe, timeout=timeout + 10)
    if p.returncode != 0:
        raise Error(f"{host}:{port} does not answer from {container.name}")


def tempdir(role):
    d = tempfile.mkdtemp(prefix=f"{PREFIX}{RUN_ID}-{role}-")
    os.chmod(d, 0o755)
    on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def host_server(directory, port, bind="0.0.0.0"):
    """server.py in the host's network namespace; stopped at cleanup."""
    logf = open(os.path.join(directory, "server.log"), "ab")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py"), "--port", str(port),
                          "--bind", bind, "--dir", directory], stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf, start_new_session=True)
    remember_pid(p.pid)

    def stop():
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        logf.close()
        forget_pid(p.pid)
    on_cleanup(stop)
    return p


def free_port():
    import socket
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- sluiced --------------------------------------------------------------------

class NotReady(Error):
    pass


# Each sluiced's policy, log and event log are kept here after the run (the
# last few runs), for whoever has to find out why a case failed.
LOGS = os.environ.get("SLUICE_E2E_LOGS", "/var/tmp/sluice-e2e-logs")


def keep_logs(workdir, role):
    dest = os.path.join(LOGS, RUN_ID, role)
    os.makedirs(dest, exist_ok=True)
    for name in ("policy.yaml", "sluiced.log", "eve.json"):
        src = os.path.join(workdir, name)
        if os.path.exists(src):
            shutil.copy(src, dest)
    runs = sorted((os.path.join(LOGS, d) for d in os.listdir(LOGS)), key=os.path.getmtime)
    for old in runs[:-5]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


class Sluiced:
    """One sluiced -f in inline mode with its own policy, control socket,
    pidfile and event log in a private directory."""

    def __init__(self, sluiced, sluicectl, workdir, mode="enforce", fail="open", queues=2,
                 queue_base=100, extra=""):
        self.bin = sluiced
        self.ctl = sluicectl
        self.dir = workdir
        self.sock = os.path.join(workdir, "control.sock")
        self.pidfile = os.path.join(workdir, "sluiced.pid")
        self.eve = os.path.join(workdir, "eve.json")
        self.log = os.path.join(workdir, "sluiced.log")
        self.policy = os.path.join(workdir, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(f"inline:\n  mode: {mode}\n  queues: {queues}\n  queue_base: {queue_base}\n"
                    f"  fail: {fail}\n"
                    f"containers:\n  docker_socket: /var/run/docker.sock\n"
                    f"control:\n  socket: {self.sock}\n  pidfile: {self.pidfile}\n"
                    f"events:\n  eve: {self.eve}\n{extra}")
            # The CA and the isolation state of this run only.
            if "\ntls:" not in "\n" + extra:
                f.write(f"tls:\n  state_dir: {os.path.join(workdir, 'state')}\n")
        self.proc = None
        on_cleanup(lambda: keep_logs(workdir, os.path.basename(workdir)))
        on_cleanup(self.stop)

    def start(self, timeout=30):
        if not self.bin or not os.path.isfile(self.bin) or not os.access(self.bin, os.X_OK):
            raise NotReady(f"sluiced not found at {self.bin!r} (set SLUICED)")
        if not self.ctl or not os.access(self.ctl, os.X_OK):
            raise NotReady(f"sluicectl not found at {self.ctl!r} (set SLUICECTL)")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.bin, "-f", "-c", self.policy], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        remember_pid(self.proc.pid)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                self._forget()
                head = self.log_head()
                hint = " (no inline mode in this sluiced?)" if self.proc.returncode == 2 or \
                    "nothing to inspect" in head else ""
                raise NotReady(f"sluiced exited with {self.proc.returncode} before it was "
                               f"ready{hint}: {head}")
            if run([self.ctl, "-s", self.sock, "status"], check=False, timeout=10).returncode == 0:
                return
            # Polled often: the suite checks what holds as soon as it answers.
            time.sleep(0.05)
        self.stop(timeout=5)
        raise NotReady(f"sluiced not ready after {timeout} s (sluicectl -s {self.sock} status "
                       f"kept failing): {self.log_tail()}")

    def log_head(self, n=4):
        try:
            lines = open(self.log, errors="replace").read().strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[:n]) or "(empty log)"

    def log_tail(self, n=15):
        try:
            lines = open(self.log, errors="replace").read().strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:]) or "(empty log)"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _forget(self):
        if self.proc:
            forget_pid(self.proc.pid)

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status, or None if it had to be killed."""
        if not self.running():
            if self.proc:
                self._forget()
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._forget()
        return rc

    def kill9(self):
        # The state file stays until stop(): the rules it leaves are ours.
        self.proc.kill()
        self.proc.wait()

    def reports(self, container=None, timeout=10, want=None):
        """sluicectl reports --json [--container X] as a list of objects.
        Waits up to timeout for one satisfying want (if given)."""
        end = time.time() + timeout
        while True:
            cmd = [self.ctl, "-s", self.sock, "-l", self.eve, "reports", "--json"]
            if container:
                cmd += ["--container", container]
            p = run(cmd, check=False, timeout=30)
            evs = []
            for line in p.stdout.splitlines():
                line = line.strip()
                if line:
                    try:
                        evs.append(__import__("json").loads(line))
                    except ValueError:
                        evs.append({"_unparsed": line})
            if want is None or any(want(e) for e in evs) or time.time() > end:
                return p.returncode, evs, p.stderr.strip()
            time.sleep(0.3)
