#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04 or later,
# or Debian 12). Every step says its name; the first that fails stops the build and names itself.
# Written into the zip by `python -m autograder gradescope` (@PY@, @VENV@ and @LOCK@ filled in).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STEP="start"
trap 'echo "setup.sh FAILED at step: $STEP (exit status $?)" >&2' ERR
step() { STEP="$1"; echo "setup.sh: $1"; }
install() { apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@"; }

step "apt-get update"
apt-get update -qq
step "install bubblewrap and CA certificates"
install bubblewrap ca-certificates
if ! python@PY@ -c "import ensurepip, venv" >/dev/null 2>&1; then
  step "install python@PY@ from the distribution"
  if ! install python@PY@ python@PY@-venv; then
    step "install the PPA tooling (python@PY@ is not in this distribution)"
    apt-get install -y -qq -o Dpkg::Use-Pty=0 software-properties-common
    step "add the deadsnakes PPA"
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update -qq
    step "install python@PY@ from the deadsnakes PPA"
    install python@PY@ python@PY@-venv
  fi
fi
step "create the venv @VENV@"
python@PY@ -m venv @VENV@
step "install the packages of @LOCK@ (pinned, hashes checked, wheels only)"
@VENV@/bin/pip install -q --no-cache-dir --disable-pip-version-check --require-hashes --only-binary :all: \
  -r "/autograder/source/@LOCK@"
step "check that the venv imports the grader's packages"
@VENV@/bin/python -c "import numpy, yaml, matplotlib"
chmod -R a+rX @VENV@
step "remove the apt cache and lists"
apt-get clean
rm -rf /var/lib/apt/lists/*
echo "setup.sh: done"
