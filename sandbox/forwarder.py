"""The in-container relay from 127.0.0.1:PORT to the egress proxy's UNIX socket, as shell text.

A sandbox has only loopback (`--network none`), so the setup phase's proxy address is a port
on the container's own loopback; a tiny relay (python3, else socat) carries each connection
to the worker's proxy through a socket in a bind-mounted directory.
"""

from __future__ import annotations

import shlex

PORT = 3128
"""Port on the container's loopback that setup commands use as their HTTP(S) proxy."""
LOG_FILE = "/tmp/.qwen-fix-relay.log"
MISSING_RELAY_EXIT = 127
MISSING_RELAY_MESSAGE = (
    "qwen-fix: the setup command needs network access (the repository configures `egress`),"
    " which needs python3 or socat in the sandbox image to relay the proxy; this image has"
    " neither. Add one of them to the image, or remove `egress`."
)

# Kept to Python 3.5 syntax: it runs on whatever python3 the repository's image has.
RELAY_SCRIPT = """\
import socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(128)
def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(client):
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()
while True:
    client, _ = server.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
"""


def start_script(socket_path: str, port: int = PORT) -> str:
    """Shell text that starts the relay in the background and prints its pid once it listens.

    Exits MISSING_RELAY_EXIT with MISSING_RELAY_MESSAGE when the image has no relay program.
    Readiness is read from /proc/net/tcp with shell builtins, so it needs no other tool.
    """
    sock = shlex.quote(socket_path)
    listening = f"0100007F:{port:04X}"  # 127.0.0.1:port as the kernel prints it
    return f"""\
if command -v python3 >/dev/null 2>&1; then
  set -- python3 -c {shlex.quote(RELAY_SCRIPT)} {sock} {port}
elif command -v socat >/dev/null 2>&1; then
  set -- socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:{sock}
else
  echo {shlex.quote(MISSING_RELAY_MESSAGE)}; exit {MISSING_RELAY_EXIT}
fi
# Its own process group, so stopping it also stops socat's per-connection children.
if command -v setsid >/dev/null 2>&1; then set -- setsid "$@"; fi
"$@" </dev/null >{LOG_FILE} 2>&1 &
qf_relay=$!
qf_listening() {{
  while read -r qf_sl qf_local qf_remote qf_state qf_rest; do
    [ "$qf_local" = {listening} ] && [ "$qf_state" = 0A ] && return 0
  done </proc/net/tcp
  return 1
}}
qf_tries=0
until qf_listening; do
  if ! kill -0 "$qf_relay" 2>/dev/null || [ "$qf_tries" -ge 1000 ]; then
    echo "qwen-fix: the egress relay did not start:"; cat {LOG_FILE}
    kill -9 "$qf_relay" 2>/dev/null; exit 1
  fi
  qf_tries=$((qf_tries + 1)); sleep 0.01
done
echo "$qf_relay"
"""


def stop_script(pid: int) -> str:
    """Shell text that kills the relay (its process group when it has one)."""
    return f"kill -9 -{pid} 2>/dev/null || kill -9 {pid} 2>/dev/null; true"


def proxy_environment(port: int = PORT) -> dict[str, str]:
    """Variables that point common tools (curl, pip, npm, git, urllib…) at the relay."""
    url = f"http://127.0.0.1:{port}"
    local = "localhost,127.0.0.1"
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "ALL_PROXY": url,
        "http_proxy": url,
        "https_proxy": url,
        "all_proxy": url,
        "NO_PROXY": local,
        "no_proxy": local,
        "npm_config_proxy": url,
        "npm_config_https_proxy": url,
        "PIP_PROXY": url,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.proxy",
        "GIT_CONFIG_VALUE_0": url,
    }
