# Shared by scripts/demo.sh and scripts/demo-import.sh (sourced, from the repository root):
# how to run tier (the compiled CLI after `npm run build`, else the sources through tsx;
# TIER_DEMO_FROM_SOURCE=1 forces the sources), a heading printer, and the root check.
if [ -z "${TIER_DEMO_FROM_SOURCE:-}" ] && [ -f dist/cli/main.js ]; then
  TIER=(node bin/tier.js)
else
  TIER=(node --import tsx src/cli/main.ts)
fi
tier() { "${TIER[@]}" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
need_root() { # script name
  if [ "$(id -u)" != 0 ]; then echo "$1: run as root (fanotify, loop mounts)" >&2; exit 1; fi
}
