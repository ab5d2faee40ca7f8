# shellcheck shell=sh
# shellcheck disable=SC2016 # box-side scripts and dpkg-query formats are single-quoted on purpose
# debian/tests/fastapi-dls-switch.sh — sourced by from-fastapi-dls-2x,
# from-fastapi-dls-1x and from-git-clone after they set:
#   major    2 or 1: which FastAPI-DLS the box ran
#   old_ver  the version of its package (below ours, 3.x)
#   port     the DLS_PORT its admin chose (443, or another: a socket drop-in)
#   kind     package (default) or gitclone: FastAPI-DLS cloned to
#            /opt/fastapi-dls with a unit its admin wrote, switched by the
#            README's recipe (dpkg --unpack, import -app, dpkg --configure)
#
# The box is made to look like a machine that ran FastAPI-DLS's own Debian
# package: a stand-in package named fastapi-dls, built here with dpkg-deb,
# that reproduces the package of that era: its file list and its maintainer
# scripts' behaviour, with no Python (a process that holds DLS_PORT with the
# webserver certificate, as www-data, stands in for uvicorn).
#   2.x: app under /usr/share/fastapi-dls/app, its unit a plain package file
#        /etc/systemd/system/fastapi-dls.service and /etc/fastapi-dls/env a
#        conffile; the unit enabled and running.
#   1.x: (fake_deb_1x) the package holds the app alone; its postinst writes
#        the unit to /etc/systemd/system and (when missing) the env file,
#        generates the instance key pair (on every configure), asks for a
#        self-signed webserver certificate, starts the unit (never enables
#        it) and hands /etc/fastapi-dls and /usr/share/fastapi-dls to
#        www-data; its postrm, for every action (upgrade too), deletes that
#        unit file and all of /usr/share/fastapi-dls; its prerm only echoes.
# Its admin edited the env file; the key set (2.x: six files in app/cert; 1.x:
# the instance key pair its postinst made with openssl genrsa) and the SQLite
# database (FastAPI-DLS's tables; 2.x or 1.0 schema) with two guests' origins
# and leases are made by the test, the leases with that key. A guest kept its
# auth token, lease ref and the key it trusts.
#
# Then a plain `dpkg -i` of our package with stdin closed and no --force
# flag, and that guest, untouched: the served token key is the old one, its
# old bearer is accepted, its old lease is listed, renewed (expiry moves) and
# returned, its origin is listed with its hostname; our unit is the one that
# runs, on the old port; `dpkg -V` misses no file of ours. `dpkg -P` then
# removes what we made and leaves FastAPI-DLS's files.
: "${major:?}" "${old_ver:?}" "${port:?}"
# shellcheck source=debian/tests/lib.sh
. "$(dirname "$0")/lib.sh"

kind=${kind:-package}
etc=/etc/fastapi-dls
app=/usr/share/fastapi-dls/app
db=$etc/db.sqlite
if [ "$kind" = gitclone ]; then
	app=/opt/fastapi-dls/app
	db=$app/db.sqlite
fi
work=$(mktemp -d)
cleanup_work() { rm -rf "$work"; }
# shellcheck disable=SC2034 # read by lib.sh's exit trap
on_exit=cleanup_work
url=https://127.0.0.1:$port

# old_package WHAT starts the stand-in package in $root ($work/old): its
# control file (WHAT: what of FastAPI-DLS's package it stands in for) and
# FastAPI-DLS's app files.
old_package() {
	root=$work/old
	mkdir -p "$root/DEBIAN" "$root/usr/share/fastapi-dls/app"
	cat >"$root/DEBIAN/control" <<EOF
Package: fastapi-dls
Version: $old_ver
Architecture: all
Maintainer: package-test stand-in <root@localhost>
Recommends: curl
Installed-Size: 64
Description: Minimal Delegated License Service (DLS).
 Stand-in for FastAPI-DLS $old_ver's own Debian package in fastapi-dls's package
 tests: $1, no Python.
EOF
	for f in main.py orm.py util.py; do echo "# stand-in for FastAPI-DLS's $f" >"$root/usr/share/fastapi-dls/app/$f"; done
}

# fake_deb_1x writes the stand-in FastAPI-DLS 1.x package to $work/old.deb,
# reproducing what its package did (its .DEBIAN directory of the 1.x era):
# the package holds the app alone (no conffile, no unit); everything else is
# made by its postinst, which has no case on its argument and no set -e.
# Depends (python3 and its modules) is left out: nothing here runs Python.
fake_deb_1x() {
	old_package "its file list and maintainer scripts' behaviour"
	# Its postinst, step by step: the config directory; the unit written
	# to /etc/systemd/system (uvicorn on $DLS_URL:$DLS_PORT with the
	# webserver pair; here openssl s_server holds that address instead);
	# daemon-reload; the env file only when there is none; a new instance
	# key pair on every configure (so a re-run would replace the key every
	# guest's token is signed with: the test configures it once); the
	# webserver question, read from stdin, default yes, answered with an
	# openssl req that asks for the subject on stdin too (no -subj); when a
	# webserver key exists the unit is started (not enabled) and its health
	# URL curled; last, both directories to www-data.
	cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/bash
WORKING_DIR=/usr/share/fastapi-dls
CONFIG_DIR=/etc/fastapi-dls

echo "> Create config directory ..."
mkdir -p $CONFIG_DIR

echo "> Install service ..."
cat <<EOF >/etc/systemd/system/fastapi-dls.service
[Unit]
Description=Service for fastapi-dls
Wants=network.target
After=network.target

[Service]
User=www-data
Group=www-data
AmbientCapabilities=CAP_NET_BIND_SERVICE
WorkingDirectory=$WORKING_DIR/app
EnvironmentFile=$CONFIG_DIR/env
# stand-in for: uvicorn main:app --env-file /etc/fastapi-dls/env --host \$DLS_URL --port \$DLS_PORT --app-dir $WORKING_DIR/app --ssl-keyfile /etc/fastapi-dls/webserver.key --ssl-certfile /etc/fastapi-dls/webserver.crt --proxy-headers
ExecStart=/usr/bin/openssl s_server -quiet -www -accept \${DLS_URL}:\${DLS_PORT} -key /etc/fastapi-dls/webserver.key -cert /etc/fastapi-dls/webserver.crt
Restart=always
KillSignal=SIGQUIT
Type=simple
NotifyAccess=all

[Install]
WantedBy=multi-user.target
EOF

systemctl daemon-reload

if [[ ! -f $CONFIG_DIR/env ]]; then
  echo "> Writing initial config ..."
  cat <<EOF >$CONFIG_DIR/env
DLS_URL=127.0.0.1
DLS_PORT=443
LEASE_EXPIRE_DAYS=90
DATABASE=sqlite:///$CONFIG_DIR/db.sqlite
#SITE_KEY_XID="00000000-0000-0000-0000-000000000000"
#INSTANCE_REF="00000000-0000-0000-0000-000000000000"
INSTANCE_KEY_RSA=$CONFIG_DIR/instance.private.pem
INSTANCE_KEY_PUB=$CONFIG_DIR/instance.public.pem
EOF
fi

echo "> Create instance key pair ..."
openssl genrsa -out $CONFIG_DIR/instance.private.pem 2048
openssl rsa -in $CONFIG_DIR/instance.private.pem -outform PEM -pubout -out $CONFIG_DIR/instance.public.pem

read -r -p "> Do you wish to create self-signed webserver certificate? [Y/n] " yn
case ${yn:-y} in
[Yy]*)
  openssl req -x509 -nodes -days 3650 -newkey rsa:2048 -keyout $CONFIG_DIR/webserver.key -out $CONFIG_DIR/webserver.crt
  ;;
esac

if [[ -f $CONFIG_DIR/webserver.key ]]; then
  echo "> Starting service ..."
  systemctl start fastapi-dls.service
  source $CONFIG_DIR/env
  curl --insecure -sS https://$DLS_URL:$DLS_PORT/-/health
fi

chown -R www-data:www-data $CONFIG_DIR
chown -R www-data:www-data $WORKING_DIR
POSTINST
	# prerm: a message, nothing stopped. postrm: for every action (remove,
	# purge, upgrade alike), the unit file its postinst wrote and all of
	# /usr/share/fastapi-dls, whatever is in it by then.
	printf '%s\n' '#!/bin/bash' "echo -e \"> Starting uninstallation of 'fastapi-dls'!\"" >"$root/DEBIAN/prerm"
	cat >"$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/bash
if [ -f /etc/systemd/system/fastapi-dls.service ]; then
  echo "> Removing service file."
  rm /etc/systemd/system/fastapi-dls.service
fi
if [ -d /usr/share/fastapi-dls ]; then
  echo "> Removing app."
  rm -r /usr/share/fastapi-dls
fi
echo -e "> Done."
POSTRM
	chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
	dpkg-deb --root-owner-group -b "$root" "$work/old.deb"
	dpkg-deb -I "$work/old.deb"
	dpkg-deb -c "$work/old.deb"
}

# fake_deb writes the stand-in FastAPI-DLS package to $work/old.deb.
fake_deb() {
	if [ "$major" = 1 ]; then
		fake_deb_1x
		return
	fi
	old_package "its file layout, conffile, unit and maintainer scripts"
	mkdir -p "$root/etc/fastapi-dls" "$root/etc/systemd/system"
	echo /etc/fastapi-dls/env >"$root/DEBIAN/conffiles"
	printf 'VERSION=%s\nCOMMIT=stand-in\n' "$old_ver" >"$root/usr/share/fastapi-dls/version.env"
	echo "# FastAPI-DLS (stand-in)" >"$root/usr/share/fastapi-dls/README.md"
	# The packaged env, as FastAPI-DLS ships it.
	{
		printf '%s\n' "# Toggle debug mode" "#DEBUG=false" "" "# Where the client can find the DLS server" \
			"DLS_URL=127.0.0.1" "DLS_PORT=443" "" "# CORS configuration" "## comma separated list without spaces" \
			'#CORS_ORIGINS="https://$DLS_URL:$DLS_PORT"' "" "# Lease expiration in days" "LEASE_EXPIRE_DAYS=90" \
			"LEASE_RENEWAL_PERIOD=0.2" "" "# Database location" "## https://docs.sqlalchemy.org/en/14/core/engines.html" \
			"DATABASE=sqlite:///$db" "" "# UUIDs for identifying the instance" \
			'#SITE_KEY_XID="00000000-0000-0000-0000-000000000000"' '#INSTANCE_REF="10000000-0000-0000-0000-000000000001"' \
			'#ALLOTMENT_REF="20000000-0000-0000-0000-000000000001"'
	} >"$root/etc/fastapi-dls/env"
	# Its unit, with a stand-in for uvicorn that holds DLS_PORT with the
	# webserver certificate, as www-data.
	cat >"$root/etc/systemd/system/fastapi-dls.service" <<'EOF'
[Unit]
Description=Service for fastapi-dls
After=network.target

[Service]
User=www-data
Group=www-data
AmbientCapabilities=CAP_NET_BIND_SERVICE
WorkingDirectory=@APP@
EnvironmentFile=/etc/fastapi-dls/env
ExecStart=/usr/bin/openssl s_server -quiet -www -accept ${DLS_PORT} \
  -key /etc/fastapi-dls/webserver.key -cert /etc/fastapi-dls/webserver.crt
Restart=always
KillSignal=SIGQUIT
Type=simple

[Install]
WantedBy=multi-user.target
EOF
	sed -i "s|@APP@|$app|" "$root/etc/systemd/system/fastapi-dls.service"
	# Its postinst: config dir, a self-signed webserver pair (its prompt
	# defaults to yes when stdin is closed), everything to www-data, the unit
	# enabled and started.
	cat >"$root/DEBIAN/postinst" <<EOF
#!/bin/bash
WORKING_DIR=/usr/share/fastapi-dls
CONFIG_DIR=/etc/fastapi-dls
mkdir -p \$CONFIG_DIR
if [ ! -f \$CONFIG_DIR/webserver.key ]; then
  openssl req -x509 -nodes -days 3650 -newkey rsa:2048 -subj /CN=127.0.0.1 \\
    -keyout \$CONFIG_DIR/webserver.key -out \$CONFIG_DIR/webserver.crt 2>/dev/null
fi
chown -R www-data:www-data \$CONFIG_DIR
chown -R www-data:www-data \$WORKING_DIR
systemctl daemon-reload
systemctl enable fastapi-dls.service
systemctl start fastapi-dls.service
EOF
	printf '%s\n' '#!/bin/bash' "echo -e \"> Starting uninstallation of 'fastapi-dls'!\"" >"$root/DEBIAN/prerm"
	printf '%s\n' '#!/bin/bash' 'exit 0' >"$root/DEBIAN/postrm"
	chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
	if [ "$kind" = gitclone ]; then
		# no package: the same files, put in place by hand (install_old)
		tar -C "$root" -cf "$work/old.tar" etc usr
		return 0
	fi
	dpkg-deb --root-owner-group -b "$root" "$work/old.deb"
	dpkg-deb -I "$work/old.deb"
	dpkg-deb -c "$work/old.deb"
}

build_helper() {
	# the helper that makes the database and the guest's state
	(cd "$repo" && CGO_ENABLED=0 ${GO:-go} build -trimpath -o "$work/fakedls" ./debian/tests/fakedls)
}

copy_more() {
	if [ "$kind" = gitclone ]; then
		bcp "$work/old.tar" /root/pkg/old.tar
	else
		bcp "$work/old.deb" /root/pkg/old.deb
	fi
	bcp "$work/fakedls" /usr/local/bin/fakedls
	bx chmod 0755 /usr/local/bin/fakedls
}

install_old() {
	if [ "$kind" = gitclone ]; then
		# as its README has admins do it: the app cloned to /opt, the env
		# and the webserver pair in /etc/fastapi-dls, a unit of their own
		bx sh -ec "mkdir -p /opt/fastapi-dls/app /root/pkg/old && tar -C /root/pkg/old -xf /root/pkg/old.tar &&
			cp -r /root/pkg/old/usr/share/fastapi-dls/app/. /opt/fastapi-dls/app/ &&
			install -d $etc && cp /root/pkg/old/etc/fastapi-dls/env $etc/env &&
			cp /root/pkg/old/etc/systemd/system/fastapi-dls.service /etc/systemd/system/ &&
			openssl req -x509 -nodes -days 3650 -newkey rsa:2048 -subj /CN=127.0.0.1 \
				-keyout $etc/webserver.key -out $etc/webserver.crt 2>/dev/null &&
			chown -R www-data:www-data $etc /opt/fastapi-dls &&
			systemctl daemon-reload && systemctl enable --now fastapi-dls.service"
		if bx dpkg-query -S /etc/systemd/system/fastapi-dls.service; then return 1; fi
		[ "$(bx systemctl is-enabled fastapi-dls.service)" = enabled ]
		return 0
	fi
	if [ "$major" = 1 ]; then
		# Installed by its admin at a terminal, pressing Enter at each
		# question: yes to the webserver certificate, then openssl's default
		# subject fields. (With stdin closed, as here for ours, the
		# question's default is yes too, but openssl req fails at its first
		# field and leaves webserver.key without webserver.crt: the unit
		# is then started and fails until the admin makes the pair.)
		bxt 300 sh -c 'yes "" | head -n 10 | dpkg -i /root/pkg/old.deb'
	else
		bxt 300 dpkg -i /root/pkg/old.deb
	fi
	[ "$(bx dpkg-query -W -f '${Version}' fastapi-dls)" = "$old_ver" ]
	bx dpkg-query -L fastapi-dls | tee "$work/old-files"
	if [ "$major" = 1 ]; then
		# no package file in /etc; the unit and the env file are its
		# postinst's; the unit was started, not enabled
		if grep '^/etc' "$work/old-files"; then return 1; fi
		grep -qx $app/main.py "$work/old-files"
		[ -z "$(bx dpkg-query -W -f '${Conffiles}' fastapi-dls)" ]
		bx cat /etc/systemd/system/fastapi-dls.service $etc/env
		bx openssl x509 -in $etc/webserver.crt -noout -subject
		# Its postinst starts the unit before its chown: the first start
		# cannot read webserver.key (root's, 0600 then) and fails, and
		# Restart=always starts it again a moment later, as www-data's.
		wait_active 20
		[ "$(bx systemctl is-enabled fastapi-dls.service)" = disabled ]
		bx openssl rsa -in $etc/instance.private.pem -noout -check
		return 0
	fi
	grep -qx /etc/systemd/system/fastapi-dls.service "$work/old-files"
	grep -qx $app/main.py "$work/old-files"
	bx dpkg-query -W -f '${Conffiles}\n' fastapi-dls | grep -q '/etc/fastapi-dls/env'
	[ "$(bx systemctl is-enabled fastapi-dls.service)" = enabled ]
}

# The admin's work and the server's: the env edited, the key set and the
# database with the guests' leases, owned by www-data; the service restarted.
old_state() {
	bx sed -i "s/^DLS_PORT=.*/DLS_PORT=$port/; s/^LEASE_RENEWAL_PERIOD=.*/LEASE_RENEWAL_PERIOD=0.15/" $etc/env
	if [ "$major" = 2 ]; then
		bx install -d -o www-data -g www-data -m 0755 $app/cert
		bx setpriv --reuid=www-data --regid=www-data --init-groups sh -ec '
			cd "$1"
			umask 022
			subj="/C=US/ST=California/O=Nvidia/OU=Nvidia Licensing Service (NLS)"
			ca="basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
			openssl genrsa -traditional -out root_private_key.pem 4096 2>/dev/null
			openssl req -x509 -new -key root_private_key.pem -sha256 -days 3650 -subj "$subj/CN=NLS Root CA" \
				-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
				-out root_certificate.pem
			openssl genrsa -traditional -out ca_private_key.pem 4096 2>/dev/null
			openssl req -new -key ca_private_key.pem -subj "$subj/CN=NLS Intermediate CA" -out /var/tmp/ca.csr
			printf "%s\n" "$ca" >/var/tmp/ca.ext
			openssl x509 -req -in /var/tmp/ca.csr -CA root_certificate.pem -CAkey root_private_key.pem \
				-set_serial 0x$(openssl rand -hex 16) -days 3650 -sha256 -extfile /var/tmp/ca.ext -out ca_certificate.pem
			ref=10000000-0000-0000-0000-000000000001
			openssl genrsa -traditional -out si_private_key.pem 2048 2>/dev/null
			openssl req -new -key si_private_key.pem -subj "/CN=$ref" -out /var/tmp/si.csr
			printf "%s\n" "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement" \
				"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:$ref" \
				"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >/var/tmp/si.ext
			openssl x509 -req -in /var/tmp/si.csr -CA ca_certificate.pem -CAkey ca_private_key.pem \
				-set_serial 0x$(openssl rand -hex 16) -days 3650 -sha256 -extfile /var/tmp/si.ext -out si_certificate.pem
			rm -f /var/tmp/ca.csr /var/tmp/si.csr /var/tmp/ca.ext /var/tmp/si.ext
			chmod 0600 root_private_key.pem ca_private_key.pem si_private_key.pem
			openssl verify -CAfile root_certificate.pem -untrusted ca_certificate.pem si_certificate.pem' sh "$app/cert"
		old_key=$app/cert/si_private_key.pem
		schema=2.x
	else
		old_key=$etc/instance.private.pem
		schema=1.0
	fi
	echo "$old_key" >"$work/old_key"
	bx fakedls -key "$old_key" -schema $schema -db $db -state /root/guest/old.json -url "$url" -port "$port"
	bx chown www-data:www-data $db
	bxt 60 systemctl restart fastapi-dls.service
	bx systemctl is-active fastapi-dls.service
	# the stand-in holds the admin's port, as uvicorn did
	deadline=$(($(date +%s) + 20))
	until bx ss -Hltn | grep -qE "[:*]$port\b"; do
		[ "$(date +%s)" -lt "$deadline" ] || { bx ss -Hltnp; return 1; }
		sleep 0.5
	done
	bx sh -c 'find /etc/fastapi-dls /usr/share/fastapi-dls /opt/fastapi-dls -type f 2>/dev/null | sort | xargs sha256sum' | tee "$work/old.sha"
	bx sh -c 'find /etc/fastapi-dls /usr/share/fastapi-dls /opt/fastapi-dls -type f -o -type d 2>/dev/null | sort | xargs stat -c "%U:%G %a %n"'
	bx cp /root/guest/old.json /root/guest/kept.json
	# The switch comes long after FastAPI-DLS's install, here seconds: make
	# systemd forget the old unit's starts (1.x: three, its failed first one
	# included), which its start limit (5 in 10 s, per unit name) would
	# count against ours: the switch starts ours twice and second_import once
	# more (seen on trixie: "Start request repeated too quickly").
	bx systemctl reset-failed fastapi-dls.service
}

install_ours() {
	if [ "$kind" = gitclone ]; then
		# the README's recipe
		{
			bxt 60 systemctl disable --now fastapi-dls.service
			bx mv /etc/systemd/system/fastapi-dls.service /root/fastapi-dls.service.old
			bxt 300 dpkg --unpack /root/pkg/fastapi-dls.deb
			bxt 120 fastapi-dls import -app $app
			bxt 300 dpkg --configure fastapi-dls
		} 2>&1 | tee "$work/dpkg.out"
	else
		# what unattended upgrades and Ansible run: no flags, no terminal
		bxt 300 dpkg -i /root/pkg/fastapi-dls.deb 2>&1 | tee "$work/dpkg.out"
	fi
	st=$(bx dpkg-query -W -f '${Status} ${Version}\n' fastapi-dls)
	echo "$st"
	echo "$st" | grep -q '^install ok installed 3'
	if grep -qi 'conffile' "$work/dpkg.out"; then return 1; fi
	grep -q 'imported 2 origins, 2 leases' "$work/dpkg.out"
	grep -q "keys: FastAPI-DLS $major.x" "$work/dpkg.out"
}

service_up() {
	bxt 150 curl -sS --fail-with-body -k --max-time 140 "$url/-/health"
	echo
	wait_active 60
	[ "$(bx systemctl show -P User fastapi-dls.service)" = fastapi-dls ]
	# the stand-in is gone, its unit file too (dpkg removed it); the enable
	# link is ours now
	echo "www-data processes:"
	if bx pgrep -u www-data -l; then return 1; fi
	bx test ! -e /etc/systemd/system/fastapi-dls.service
	link=$(bx readlink /etc/systemd/system/multi-user.target.wants/fastapi-dls.service)
	echo "enable link -> $link"
	case "$link" in # merged /usr (trixie, noble): /usr/lib
	/lib/systemd/system/fastapi-dls.service | /usr/lib/systemd/system/fastapi-dls.service) ;;
	*) return 1 ;;
	esac
	bx systemctl show -p FragmentPath fastapi-dls.service | grep /lib/systemd/system/fastapi-dls.service
	# our units started at the first try: the old daemon no longer held
	# the port, nor the service's name, when the sockets started (a later
	# restart would hide that, with the import run beside a live daemon)
	bx journalctl --no-pager -o cat -u fastapi-dls.socket -u fastapi-dls-http.socket -u fastapi-dls.service \
		>"$work/units.journal"
	if grep -E 'Failed to listen|refusing|Dependency failed|Address already in use' "$work/units.journal"; then return 1; fi
}

# dpkg -V: no file of ours is missing or changed (a FastAPI-DLS maintainer
# script that ran during the switch could have deleted one); FastAPI-DLS's
# env file, an obsolete conffile of ours after 2.x, may differ.
verified() {
	bx dpkg -V fastapi-dls >"$work/verify" 2>&1 || true
	cat "$work/verify"
	if grep -v '^[?.0-9a-z]* c /etc/fastapi-dls/env$' "$work/verify"; then return 1; fi
	# and every file of ours is there
	# (only paths: on Ubuntu dpkg-query -L also prints lines such as
	# "diverted by base-files to: /lib.usr-is-merged")
	bx sh -c 'dpkg-query -L fastapi-dls | grep "^/" | while read -r f; do [ -e "$f" ] || echo "missing $f"; done' | tee "$work/missing"
	[ ! -s "$work/missing" ]
}

# tok PART prints the decoded JSON of a JWT part (1 = payload).
jwt_payload() {
	p=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
	while [ $((${#p} % 4)) -ne 0 ]; do p="$p="; done
	printf '%s' "$p" | base64 -d
}

token_key() {
	tok=$(bxt 30 curl -sS --fail -k "$url/-/client-token")
	mod=$(jwt_payload "$tok" | grep -o '"mod":"[0-9a-f]*"' | cut -d'"' -f4)
	old=$(bx openssl rsa -in "$(cat "$work/old_key")" -noout -modulus | cut -d= -f2 | tr 'A-F' 'a-f')
	echo "served token key: $(printf '%s' "$mod" | cut -c1-32)…"
	echo "FastAPI-DLS key:  $(printf '%s' "$old" | cut -c1-32)…"
	[ -n "$mod" ] && [ "$mod" = "$old" ]
}

bearer_and_lease_listed() {
	bx sh -c 'grep -o "\"auth_token\": \"[^\"]*\"" /root/guest/kept.json | cut -d\" -f4' >"$work/bearer"
	lease=$(bx sh -c 'grep -o "\"lease_ref\": \"[^\"]*\"" /root/guest/kept.json | cut -d\" -f4')
	echo "lease $lease"
	bxt 30 curl -sS --fail-with-body -k -H "Authorization: Bearer $(cat "$work/bearer")" \
		"$url/leasing/v1/lessor/leases" | tee "$work/leases.json"
	echo
	grep -q "$lease" "$work/leases.json"
}

renew_moves_expiry() {
	before=$(bx sh -c 'grep -o "\"lease_expires\": \"[^\"]*\"" /root/guest/kept.json')
	bxt 120 /usr/local/bin/dls-guest -insecure renew -state /root/guest/kept.json
	after=$(bx sh -c 'grep -o "\"lease_expires\": \"[^\"]*\"" /root/guest/kept.json')
	echo "before: $before"
	echo "after:  $after"
	[ -n "$after" ] && [ "$before" != "$after" ]
}

origin_listed() {
	bxt 30 curl -sS --fail-with-body -k "$url/-/origins" | tee "$work/origins.json"
	echo
	grep -q '"hostname":"vm-licensed-by-fastapi-dls"' "$work/origins.json"
	grep -q '"hostname":"WIN-GPU-02"' "$work/origins.json"
}

returned() {
	bxt 120 /usr/local/bin/dls-guest -insecure release -state /root/guest/kept.json
	bxt 30 curl -sS --fail-with-body -k -H "Authorization: Bearer $(cat "$work/bearer")" \
		"$url/leasing/v1/lessor/leases" | tee "$work/leases-after.json"
	echo
	lease=$(bx sh -c 'grep -o "\"lease_ref\": \"[^\"]*\"" /root/guest/old.json | cut -d\" -f4')
	if grep -q "$lease" "$work/leases-after.json"; then return 1; fi
}

imported_in_journal() {
	bx journalctl --no-pager -o verbose EVENT=import.database | tee "$work/journal-import.txt" | grep -E 'LEASES_ADDED=2|ORIGINS_ADDED=2'
	bx journalctl --no-pager -o cat EVENT=import.keys | grep -q 'key set imported'
}

old_files_kept() {
	bx sh -c 'find /etc/fastapi-dls /usr/share/fastapi-dls /opt/fastapi-dls -type f 2>/dev/null | sort | xargs sha256sum' >"$work/now.sha"
	# every FastAPI-DLS file is still there with its content (package files
	# under app/ are gone: dpkg removed them with the old package)
	grep -v " $app/[a-z]*\.py\$\| /usr/share/fastapi-dls/\(README.md\|version.env\)\$" "$work/old.sha" >"$work/kept.sha"
	cat "$work/kept.sha"
	bcp "$work/kept.sha" /root/kept.sha
	bx sha256sum -c /root/kept.sha
	# www-data still reads its own keys (a rollback runs as www-data)
	bx setpriv --reuid=www-data --regid=www-data --init-groups cat "$(cat "$work/old_key")" >/dev/null
}

# A second import (as an admin might run it) imports nothing twice.
second_import() {
	bxt 60 systemctl stop fastapi-dls.service fastapi-dls.socket fastapi-dls-http.socket
	if [ "$kind" = gitclone ]; then
		bxt 60 fastapi-dls import -app $app | tee "$work/import2.out"
	else
		bxt 60 fastapi-dls import | tee "$work/import2.out"
	fi
	grep -q 'nothing new to import' "$work/import2.out"
	grep -q 'already in place, nothing copied' "$work/import2.out"
	bxt 60 systemctl start fastapi-dls.socket fastapi-dls-http.socket fastapi-dls.service
	wait_active 60
}

port_dropin() {
	if [ "$port" = 443 ]; then
		bx test ! -e /etc/systemd/system/fastapi-dls.socket.d/50-dls-port.conf
	else
		bx cat /etc/systemd/system/fastapi-dls.socket.d/50-dls-port.conf
	fi
	bx systemctl show -p Listen fastapi-dls.socket | grep ":$port (Stream)"
	# held by our socket (systemd), nothing of FastAPI-DLS's
	bx ss -Hltnp "sport = :$port" | tee "$work/port"
	grep -q '"systemd"' "$work/port"
	if grep -q '"openssl"' "$work/port"; then return 1; fi
}

purge() {
	bxt 120 dpkg -P fastapi-dls
	bx sh -c '! dpkg-query -W -f "\${Status}\n" fastapi-dls 2>/dev/null | grep -q installed'
	bx test ! -e /var/lib/fastapi-dls
	bx test ! -e /etc/systemd/system/fastapi-dls.socket.d/50-dls-port.conf
	bx test ! -e /usr/lib/fastapi-dls/env
	if bx pgrep -u fastapi-dls -l; then return 1; fi
	# FastAPI-DLS's files stay, with their content, the env file too
	bx sha256sum -c /root/kept.sha
	bx test ! -e /etc/fastapi-dls/.env-kept-on-purge
	bx test ! -e /etc/fastapi-dls/.generated-by-postinst
}

find_inputs
step -f "build a stand-in FastAPI-DLS $old_ver ($kind)" fake_deb
step -f "build the helper (fakedls)" build_helper
step -f "box start" start_box
step -f "copy .debs, dls-guest and the helper into the box" copy_inputs
step -f "copy the stand-in package and helper" copy_more
if [ "$major" = 1 ]; then old_unit="its postinst's unit, started, not enabled"; else old_unit="enabled unit"; fi
step -f "FastAPI-DLS $old_ver (stand-in, $kind): its files, $old_unit" install_old
step -f "FastAPI-DLS $major.x state: env edited, keys, SQLite database, a guest's lease; serving on $port" old_state
step -f "switch ($kind): no flags, stdin closed, no conffile prompt; import reported" install_ours
step -f "our service answers on $port; FastAPI-DLS's process, unit file and enable link are gone" service_up
step "dpkg -V: every file of ours is there, unchanged" verified
step "the served token key is FastAPI-DLS's" token_key
step "the guest's old bearer is accepted and its old lease listed" bearer_and_lease_listed
step "the old lease renews (expiry moves, signature by the old key)" renew_moves_expiry
step "the old origins are listed with their hostnames" origin_listed
step "the import is in the journal" imported_in_journal
step "DLS_PORT=$port kept" port_dropin
step "FastAPI-DLS's files are where they were, unchanged" old_files_kept
step "the old lease is returned" returned
step "a second import imports nothing twice" second_import
step "dpkg -P removes ours, keeps FastAPI-DLS's files" purge
