#!/usr/bin/env bash
# The whole suite: typecheck, build, then every test file with node's test runner.
# A Ceph RGW for the S3 tests is started here once and stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json --noEmit
npm run build --silent
if [ -x scripts/rgw.sh ] && [ -z "${TIER_TEST_S3_ENDPOINT:-}" ]; then
  eval "$(bash scripts/rgw.sh start)"
  trap 'bash scripts/rgw.sh stop' EXIT
fi
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency="${TIER_TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"
