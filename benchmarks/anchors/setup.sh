#!/usr/bin/env bash
# Prepares the anchors measured beside our sandbox, outside the repository:
#  1. a virtual environment with mini-swe-agent and SWE-ReX (our venv never imports them);
#  2. an image FROM our sandbox image with SWE-ReX's `swerex-remote` server added, which its
#     DockerDeployment needs inside the container. The sandbox image has python3 but no pip and
#     no network, so swe-rex is pip-installed on the host into a build context (the image's
#     python is 3.11 like the venv's) and only COPYed in: the build needs no network at all.
# Prints two lines: the venv's python, then the SWE-ReX image's tag.
# Usage: benchmarks/anchors/setup.sh BASE_IMAGE [VENV_DIR]
#        (VENV_DIR defaults to $TMPDIR/qwen-fix-anchors-venv)
set -euo pipefail

MINI_SWE_AGENT_VERSION=2.4.6
SWE_REX_VERSION=1.4.0
base_image="${1:?usage: setup.sh BASE_IMAGE [VENV_DIR]}"
venv="${2:-${TMPDIR:-/tmp}/qwen-fix-anchors-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" - >/dev/null 2>&1 <<PY
from importlib.metadata import version
assert version("mini-swe-agent") == "$MINI_SWE_AGENT_VERSION"
assert version("swe-rex") == "$SWE_REX_VERSION"
PY
then
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "mini-swe-agent==$MINI_SWE_AGENT_VERSION" "swe-rex==$SWE_REX_VERSION" >&2
fi

base_id="$(docker image inspect --format '{{.Id}}' "$base_image")"
# Bump RECIPE when the image's build steps change.
RECIPE=2
swerex_image="qwen-fix-anchor-swerex:${SWE_REX_VERSION}-r${RECIPE}-${base_id:7:12}"
if ! docker image inspect "$swerex_image" >/dev/null 2>&1; then
    context="$(mktemp -d "${TMPDIR:-/tmp}/qwen-fix-swerex-image.XXXXXX")"
    trap 'rm -rf "$context"' EXIT
    # Compiled here: the sandbox user cannot write .pyc files there, and compiling fastapi and
    # pydantic at every start would add seconds to SWE-ReX's start.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        --target "$context/site" "swe-rex==$SWE_REX_VERSION" >&2
    printf '%s\n' '#!/usr/bin/python3' 'import sys' 'from swerex.server import main' \
        'sys.exit(main())' >"$context/swerex-remote"
    chmod 755 "$context/swerex-remote"
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM $base_image
COPY site /opt/swerex-site
COPY swerex-remote /usr/local/bin/swerex-remote
ENV PYTHONPATH=/opt/swerex-site
DOCKERFILE
    DOCKER_BUILDKIT=0 docker build --quiet --network none -t "$swerex_image" "$context" >&2
fi
echo "$venv/bin/python"
echo "$swerex_image"
