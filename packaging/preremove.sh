#!/bin/sh
# The .deb's prerm: stop and disable the service. The config and the state
# (keys, the hypervisor's database) stay.
set -e
if [ -d /run/systemd/system ]; then
  systemctl disable --now skywire.service >/dev/null 2>&1 || true
fi
