#!/bin/sh
# Container entrypoint: `serve` (the default) or any other innerspace subcommand.
set -eu
exec innerspace "$@"
