#!/bin/sh
# `torchserve [extra torchserve flags]` runs the model server in the foreground with the
# image's config (token auth on); anything else is a `vigil` command.
set -eu
if [ "${1:-}" = "torchserve" ]; then
    shift
    exec torchserve --start --foreground --ncs \
        --ts-config "${TS_CONFIG_FILE:-/opt/vigil/config.properties}" \
        --model-store "${VIGIL_MODEL_STORE:-/opt/vigil/archives}" "$@"
fi
exec vigil "$@"
