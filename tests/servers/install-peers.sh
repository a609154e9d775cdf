#!/usr/bin/env bash
# Installs what the tests' real peers need: Node.js + oidc-provider (npm ci, pinned by the lock
# file), Debian's Chromium for Playwright, Dovecot and slapd (+ ldap-utils). Debian packages only
# when missing and run as root;
# otherwise the tests say what is missing (and fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v node >/dev/null || missing+=(nodejs npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
for pkg in dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd \
  slapd ldap-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep Debian's own Dovecot and slapd from starting (ports 143/110/389 stay free; the tests
    # start their own throwaway instances). Only when no policy is in place already. slapd's
    # debconf questions take their defaults (DEBIAN_FRONTEND=noninteractive).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "${added_policy:-}" ]; then rm -f "$policy"; fi
  else
    echo "warning: missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
  fi
fi

if command -v npm >/dev/null; then
  if [ ! -f oidc/node_modules/.package-lock.json ] || \
     ! cmp -s oidc/package-lock.json oidc/node_modules/.mailgrant-lock; then
    (cd oidc && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.mailgrant-lock)
  fi
fi
