"""The single-node cluster: certificates, configuration and processes (under supervisord).

Addresses (all off the private ranges, in the benchmarking range 198.18.0.0/15, see
shared/MEASURED.md): pods 198.18.0.0/24 on the bridge `loupe-br0`, the node itself 198.18.128.1
on the loopback interface (the API server, kubelet and CoreDNS listen there so pods can
reach them), services 198.19.0.0/16. Clients on this machine reach the API server and Loupe
through 127.0.0.1 only: NodePorts are served on loopback alone.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("loupe_cluster")

NODE_NAME = "loupe-node"
NODE_IP = "198.18.128.1"
POD_SUBNET = "198.18.0.0/24"
POD_CIDR = "198.18.0.0/17"  # what kube-proxy treats as the cluster's own traffic
SERVICE_CIDR = "198.19.0.0/16"
KUBERNETES_SERVICE_IP = "198.19.0.1"
BRIDGE = "loupe-br0"
API_PORT = 6443
ETCD_PORT = 2379
ETCD_PEER_PORT = 2380

#: Processes in start order (supervisord priority follows this order).
PROCESSES = ("containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
             "kubelet", "kube-proxy", "coredns")


@dataclasses.dataclass(frozen=True)
class ClusterLayout:
    """Where the cluster keeps its state (data kept by `make k8s-down`) and its binaries."""

    data: Path  # .loupe/k8s of the checkout: etcd, kubelet, volumes, certificates, env
    cache: Path  # the Loupe cache: binaries, images, containerd's content (shared by checkouts)

    @property
    def bin(self) -> Path:
        return self.cache / "k8s" / "bin"

    @property
    def pki(self) -> Path:
        return self.data / "pki"

    @property
    def run(self) -> Path:
        # Unix socket paths must stay short (108 bytes), so they live under /run.
        return Path("/run/loupe-k8s")

    @property
    def containerd_sock(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def volumes(self) -> Path:
        return self.data / "volumes"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.data / "kubeconfig"

    @property
    def supervisor_conf(self) -> Path:
        return self.data / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def env_file(self) -> Path:
        return self.data / "env"

    @property
    def owner_file(self) -> Path:
        """Names the data folder of the cluster that runs now: one machine runs one cluster, and
        the run folder (sockets, supervisord) is the machine's, not a checkout's."""
        return self.run / "owner"

    def owner(self) -> Path | None:
        try:
            return Path(self.owner_file.read_text().strip())
        except FileNotFoundError:
            return None


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log.debug("$ %s", " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---- certificates ---------------------------------------------------------------------------------

#: client certificates: name -> (CN, O)
CLIENTS = {
    "admin": ("kubernetes-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "kube-proxy": ("system:kube-proxy", ""),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
    "coredns": ("system:coredns", ""),
}


def _openssl(*args: str, cwd: Path) -> None:
    _run(["openssl", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_pki(pki: Path) -> None:
    """A CA and every certificate the cluster needs, made once (10 years, RSA 2048)."""
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    if not (pki / "ca.crt").exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                 "-days", "3650", "-subj", "/CN=loupe-kubernetes-ca", cwd=pki)
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    sans = ["DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local", "DNS:localhost", f"DNS:{NODE_NAME}",
            "IP:127.0.0.1", f"IP:{NODE_IP}", f"IP:{KUBERNETES_SERVICE_IP}"]
    _leaf(pki, "apiserver", "/CN=kube-apiserver", server_sans=sans)
    _leaf(pki, "kubelet-serving", f"/CN={NODE_NAME}", server_sans=[f"DNS:{NODE_NAME}", f"IP:{NODE_IP}"])
    for name, (cn, org) in CLIENTS.items():
        _leaf(pki, name, f"/CN={cn}" + (f"/O={org}" if org else ""))


def _leaf(pki: Path, name: str, subject: str, server_sans: list[str] | None = None) -> None:
    if (pki / f"{name}.crt").exists():
        return
    ext = pki / f"{name}.ext"
    if server_sans:
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\nsubjectAltName=" + ",".join(server_sans) + "\n")
    else:
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=pki)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "3650", "-extfile", ext.name, cwd=pki)
    (pki / f"{name}.csr").unlink()
    ext.unlink()


def kubeconfig(pki: Path, client: str, server: str) -> str:
    """A kubeconfig (YAML is a superset of JSON) for one client certificate."""
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "loupe",
        "clusters": [{"name": "loupe", "cluster": {"server": server,
                                                   "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": client, "user": {"client-certificate": str(pki / f"{client}.crt"),
                                            "client-key": str(pki / f"{client}.key")}}],
        "contexts": [{"name": "loupe", "context": {"cluster": "loupe", "user": client}}],
    }
    return json.dumps(doc, indent=2) + "\n"


# ---- configuration files --------------------------------------------------------------------------

def containerd_config(layout: ClusterLayout, pause_image: str) -> str:
    return f"""version = 2
root = "{layout.cache / 'k8s' / 'containerd'}"
state = "{layout.run / 'containerd'}"
[grpc]
  address = "{layout.containerd_sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # The VM lacks CAP_SYS_RESOURCE: without this every sandbox fails ("can't get final child's PID
  # from pipe: EOF"), see shared/MEASURED.md.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.data / 'cni'}"
"""


def cni_config() -> str:
    return json.dumps({
        "cniVersion": "1.0.0", "name": "loupe",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"


def kubelet_config(layout: ClusterLayout) -> str:
    pki = layout.pki
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        # The machine has the cgroup v1 hierarchy and no systemd (shared/MEASURED.md).
        "cgroupDriver": "cgroupfs", "failCgroupV1": False,
        "address": NODE_IP, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(pki / "kubelet-serving.crt"), "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {"x509": {"clientCAFile": str(pki / "ca.crt")}, "webhook": {"enabled": True},
                           "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local", "clusterDNS": [NODE_IP],
        "resolvConf": str(layout.data / "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{layout.containerd_sock}",
        "failSwapOn": False,
        # Images are built here and cannot be pulled again: never garbage-collect them, and
        # evict only when the disk is really full. The thresholds are sizes, not shares: the
        # disk is shared with everything else on the machine, and 2 % of a large one is gigabytes.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "1Gi", "imagefs.available": "1Gi",
                         "nodefs.inodesFree": "1%"},
        "serializeImagePulls": False,
        "maxPods": 110,
        "shutdownGracePeriod": "0s",
    }, indent=2) + "\n"


def kube_proxy_config(layout: ClusterLayout) -> str:
    return json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": POD_CIDR,
        "clientConnection": {"kubeconfig": str(layout.data / "kube-proxy.kubeconfig")},
        "bindAddress": "127.0.0.1", "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts only on loopback: clients on this machine reach Loupe through 127.0.0.1.
        "nodePortAddresses": ["127.0.0.0/8"],
        # The VM does not let kube-proxy raise conntrack limits; leave them as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }, indent=2) + "\n"


def corefile() -> str:
    # No `forward`: pods resolve cluster names only, and nothing is asked of any outside resolver.
    return f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:10280
    ready 127.0.0.1:10281
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {{KUBECONFIG}} loupe
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loop
}}
"""


def commands(layout: ClusterLayout) -> dict[str, list[str]]:
    b, pki, d = layout.bin, layout.pki, layout.data
    api = f"https://{NODE_IP}:{API_PORT}"
    return {
        "containerd": ["/usr/bin/containerd", "--config", str(d / "containerd.toml")],
        "etcd": ["/usr/bin/etcd", "--name", NODE_NAME, "--data-dir", str(d / "etcd"),
                 "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
                 "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
                 "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
                 "--initial-cluster", f"{NODE_NAME}=http://127.0.0.1:{ETCD_PEER_PORT}",
                 "--quota-backend-bytes", str(2 * 1024**3)],
        "kube-apiserver": [
            str(b / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            f"--advertise-address={NODE_IP}", "--bind-address=0.0.0.0", f"--secure-port={API_PORT}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=false", "--profiling=false", "--event-ttl=1h",
        ],
        "kube-controller-manager": [
            str(b / "kube-controller-manager"), f"--kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--bind-address=127.0.0.1",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false",
        ],
        "kube-scheduler": [
            str(b / "kube-scheduler"), f"--kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'scheduler.kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--profiling=false",
        ],
        "kubelet": [
            str(b / "kubelet"), f"--config={d / 'kubelet.json'}", f"--kubeconfig={d / 'kubelet.kubeconfig'}",
            f"--root-dir={d / 'kubelet'}", f"--node-ip={NODE_IP}", f"--hostname-override={NODE_NAME}",
        ],
        "kube-proxy": [str(b / "kube-proxy"), f"--config={d / 'kube-proxy.json'}",
                       f"--hostname-override={NODE_NAME}"],
        "coredns": [str(b / "coredns"), "-conf", str(d / "Corefile")],
    }


def write_config(layout: ClusterLayout, pause_image: str) -> None:
    d = layout.data
    for sub in ("etcd", "kubelet", "cni", "logs", "volumes"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    ensure_pki(layout.pki)
    internal = f"https://{NODE_IP}:{API_PORT}"
    for client, server in (("controller-manager", internal), ("scheduler", internal), ("kubelet", internal),
                           ("kube-proxy", internal), ("coredns", internal), ("admin", f"https://127.0.0.1:{API_PORT}")):
        target = layout.admin_kubeconfig if client == "admin" else d / f"{client}.kubeconfig"
        target.write_text(kubeconfig(layout.pki, client, server))
        os.chmod(target, 0o600)
    (d / "containerd.toml").write_text(containerd_config(layout, pause_image))
    (d / "cni" / "10-loupe.conflist").write_text(cni_config())
    (d / "kubelet.json").write_text(kubelet_config(layout))
    (d / "kube-proxy.json").write_text(kube_proxy_config(layout))
    (d / "Corefile").write_text(corefile().replace("{KUBECONFIG}", str(d / "coredns.kubeconfig")))
    # Pods get the cluster's resolver only (kubelet adds it); no outside resolver is copied in.
    (d / "resolv.conf").write_text("# Loupe's cluster: no resolver outside the cluster\n")
    layout.supervisor_conf.write_text(supervisor_conf(layout))


def supervisor_conf(layout: ClusterLayout) -> str:
    lines = [
        "[unix_http_server]", f"file={layout.supervisor_sock}", "chmod=0700", "",
        "[supervisord]", f"logfile={layout.logs / 'supervisord.log'}",
        f"pidfile={layout.run / 'supervisord.pid'}", f"childlogdir={layout.logs}", "logfile_maxbytes=10MB", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{layout.supervisor_sock}", "",
    ]
    for i, (name, cmd) in enumerate(commands(layout).items()):
        lines += [
            f"[program:{name}]", "command=" + " ".join(cmd), f"priority={10 + i}",
            "autostart=true", "autorestart=true", "startsecs=2", "startretries=1000",
            "stopasgroup=true", "killasgroup=true",
            # containerd's shims must outlive a restart of containerd itself; the pods stop
            # with kubelet's help in `down`.
            "stopsignal=TERM", "stopwaitsecs=30",
            f"stdout_logfile={layout.logs / (name + '.log')}", "redirect_stderr=true",
            "stdout_logfile_maxbytes=20MB", "stdout_logfile_backups=2", "",
        ]
    return "\n".join(lines)


# ---- host network ---------------------------------------------------------------------------------

def ensure_host_network() -> None:
    """The node address on loopback, forwarding on, bridged traffic through iptables.

    The node address lives on `lo` (this kernel has no dummy interfaces): pods reach it through
    their bridge's gateway like any address of the host, and nothing outside the machine does.
    """
    addrs = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    if f"{NODE_IP}/32" not in addrs:
        _run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"])
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        path = Path("/proc/sys") / key
        if path.exists() and path.read_text().strip() != "1":
            path.write_text("1\n")


# ---- supervisord ----------------------------------------------------------------------------------

class Cluster:
    def __init__(self, layout: ClusterLayout):
        self.layout = layout
        self.bin_supervisor = Path(sys.executable).parent

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # The socket, not our config file: the cluster that runs may be another checkout's, whose
        # folder may be gone (supervisord rereads its own config file on `update`).
        return subprocess.run([str(self.bin_supervisor / "supervisorctl"), "-s", f"unix://{self.layout.supervisor_sock}",
                               *args], check=check, capture_output=True, text=True)

    def running(self) -> bool:
        return self.layout.supervisor_sock.exists() and self.ctl("pid", check=False).returncode == 0

    def start(self) -> None:
        ensure_host_network()
        owner = self.layout.owner()
        if self.running() and owner is not None and owner != self.layout.data.resolve():
            log.info("stopping the cluster of %s first: a machine runs one cluster", owner)
            Cluster(dataclasses.replace(self.layout, data=owner)).stop()
        if self.running():
            self.ctl("update")
            self.ctl("start", "all", check=False)
            return
        subprocess.run([str(self.bin_supervisor / "supervisord"), "-c", str(self.layout.supervisor_conf)],
                       check=True)
        deadline = time.time() + 30
        while not self.running():
            if time.time() > deadline:
                raise SystemExit(f"supervisord did not start; see {self.layout.logs / 'supervisord.log'}")
            time.sleep(0.2)
        self.layout.owner_file.write_text(f"{self.layout.data.resolve()}\n")

    def kubectl(self, *args: str, check: bool = True, capture: bool = True, input: str | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.layout.bin / "kubectl"), f"--kubeconfig={self.layout.admin_kubeconfig}",
                               *args], check=check, capture_output=capture, text=True, input=input,
                              timeout=timeout)

    def wait_api(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while True:
            r = self.kubectl("get", "--raw", "/readyz", check=False)
            if r.returncode == 0 and r.stdout.strip() == "ok":
                return
            if time.time() > deadline:
                raise SystemExit(f"the API server is not ready: {r.stderr.strip()[-300:]}; "
                                 f"see {self.layout.logs}/kube-apiserver.log")
            time.sleep(1)

    def wait_node(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while True:
            r = self.kubectl("get", "node", NODE_NAME, "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
            if r.returncode == 0 and r.stdout.strip() == "True":
                return
            if time.time() > deadline:
                raise SystemExit(f"node {NODE_NAME} is not Ready; see {self.layout.logs}/kubelet.log")
            time.sleep(1)

    def stop(self) -> None:
        """Stops every pod's containers and every cluster process; the data stays."""
        if not self.running():
            return
        # Kubelet first (so it does not restart what is stopped), then the containers.
        self.ctl("stop", "kubelet", check=False)
        sock = str(self.layout.containerd_sock)
        ctr = ["ctr", "--address", sock, "-n", "k8s.io"]
        tasks = subprocess.run(ctr + ["tasks", "ls", "-q"], capture_output=True, text=True).stdout.split()
        for t in tasks:
            subprocess.run(ctr + ["tasks", "kill", "-s", "SIGKILL", t], capture_output=True)
        deadline = time.time() + 30
        while tasks and time.time() < deadline:
            listing = subprocess.run(ctr + ["tasks", "ls"], capture_output=True, text=True).stdout
            if "RUNNING" not in listing:
                break
            time.sleep(0.5)
        pidfile = self.layout.run / "supervisord.pid"
        pid = int(pidfile.read_text()) if pidfile.exists() else None
        self.ctl("shutdown", check=False)
        deadline = time.time() + 60
        while pid and time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        # Leftover shims would keep the pods' network namespaces (and ports) alive.
        subprocess.run(["pkill", "-f", "containerd-shim-runc-v2 -namespace k8s.io"], capture_output=True)
        shutil.rmtree(self.layout.run / "containerd", ignore_errors=True)
        # Kubelet leaves its pods' volumes mounted; unmounted, the data folder can be removed
        # (a CI checkout's is) without touching what the mounts point at.
        kubelet = str(self.layout.data.resolve() / "kubelet")  # itself a mount, and its pods' volumes
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts
                      if line.split()[1] == kubelet or line.split()[1].startswith(kubelet + "/")]
        for point in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        self.layout.owner_file.unlink(missing_ok=True)
