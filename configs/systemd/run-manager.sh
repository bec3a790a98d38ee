#! /bin/bash
# Runs the Backend.AI manager's API server (bai-manager's `manager-server`): what systemd starts
# (configs/systemd/backendai-manager.service) and what an operator can run by hand.
#
# Install as ${HOME}/bin/run-manager.sh (chmod +x) beside the binaries, e.g. ${HOME}/bin/manager-server
# and ${HOME}/bin/manager-cli; run it from the directory that holds manager.toml (or set
# BACKEND_CONFIG_FILE).
#   run-manager.sh                          starts manager-server (exec: the server keeps this pid)
#   run-manager.sh manager-cli config check runs another command in the same environment
set -e

if [ -z "$HOME" ]; then
   export HOME="/home/bai"
fi

# The binaries beside this script come first, then whatever PATH holds.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="${here}:${PATH}"

if [ "$#" -eq 0 ]; then
   if ! command -v manager-server > /dev/null; then
      echo "run-manager.sh: manager-server is neither in ${here} nor on PATH" >&2
      exit 1
   fi
   exec manager-server
else
   exec "$@"
fi
