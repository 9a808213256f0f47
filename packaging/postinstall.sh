#!/bin/sh
# The .deb's postinst: the service user, its directories, a config if there
# is none (the key is made here, on this machine), and the unit enabled.
# An existing config is never touched.
set -e
if ! getent passwd skywire >/dev/null; then
  useradd --system --home-dir /var/lib/skywire --shell /usr/sbin/nologin --user-group skywire
fi
install -d -o skywire -g skywire -m 0700 /etc/skywire /var/lib/skywire
if [ ! -e /etc/skywire/skywire.json ]; then
  su -s /bin/sh skywire -c '/usr/bin/skywire visor gen-config --system' >/dev/null
  echo "skywire: made /etc/skywire/skywire.json; point it at your services (skywire cli config check /etc/skywire/skywire.json), then: systemctl start skywire"
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  systemctl enable skywire.service >/dev/null || true
fi
