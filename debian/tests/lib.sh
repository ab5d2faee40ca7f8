# shellcheck shell=sh
# debian/tests/lib.sh — the harness of the box tests (sourced, not run): the
# package tests here and .ci/e2e-systemd.
#
# From the host (`make deb-test`): each test boots a fresh Debian box with
# .ci/box and drives it from outside; the .deb is dist/*.deb (or $DEB) and the
# guest simulator bin/dls-guest (or $DLS_GUEST).
# Under autopkgtest (AUTOPKGTEST_TMP set, isolation-machine, needs-root) the
# testbed itself is the box: commands run directly, and $DEB must name the
# .deb to install (the tests install, upgrade and purge it themselves).
#
# A caller outside debian/tests sets repo, box and logdir before sourcing.
#
# Output: one PASS/FAIL line per check, then "N passed, M failed"; exit 0 only
# when nothing failed. Every wait is bounded. Logs go to $logdir.

set -eu

repo=${repo:-$(cd "$(dirname "$0")/../.." && pwd)}
test_name=$(basename "$0")
BOX=$repo/.ci/box
box=${box:-${DEB_TEST_BOX:-deb-$test_name-$$}}
logdir=${logdir:-${DEB_TEST_LOG_DIR:-${AUTOPKGTEST_ARTIFACTS:-$repo/.cache/deb-test}/$test_name}}
mkdir -p "$logdir"
rm -f "$logdir"/*.log "$logdir"/*.txt

if [ -n "${AUTOPKGTEST_TMP:-}" ]; then local_mode=1; else local_mode=; fi

passed=0 failed=0 fatal=
pass() { passed=$((passed + 1)); printf 'PASS %s: %s\n' "$test_name" "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: %s%s\n' "$test_name" "$1" "${2:+ ($2)}"; }

# step [-f] NAME FUNC [ARGS…] runs FUNC in a subshell with set -e, its output
# to the step's log, and prints PASS or FAIL. After a failed -f (fatal) step
# the remaining steps are not run and count as failed.
step() {
	fatal_step=
	if [ "$1" = -f ]; then fatal_step=1; shift; fi
	name=$1
	shift
	if [ -n "$fatal" ]; then
		fail "$name" "not run: '$fatal' failed"
		return 0
	fi
	slug=$(printf '%s' "$name" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')
	log=$logdir/$slug.log
	start=$(date +%s)
	set +e
	(
		set -e
		"$@"
	) >"$log" 2>&1
	rc=$?
	set -e
	took=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		pass "$name [${took}s]"
	else
		fail "$name [${took}s]" "log: $log"
		sed -e 's/^/    | /' "$log" | tail -n 15
		if [ -n "$fatal_step" ]; then fatal=$name; fi
	fi
	return 0
}

# bx CMD… runs CMD in the box, stdin closed; bxt SECONDS CMD… bounded.
bx() {
	if [ -n "$local_mode" ]; then "$@" </dev/null; else "$BOX" exec "$box" -- "$@"; fi
}
bxt() {
	t=$1
	shift
	bx timeout "$t" "$@"
}
# bcp HOSTFILE BOXPATH copies a host file into the box.
bcp() {
	if [ -n "$local_mode" ]; then cp "$1" "$2"; else "$BOX" cp "$box" "$1" "$2"; fi
}

guest() {
	bxt 120 /usr/local/bin/dls-guest -url https://127.0.0.1:443 -http http://127.0.0.1:80 -insecure "$@"
}

# service_pid and service_restarts are the service's MainPID and NRestarts.
service_pid() { bx systemctl show -P MainPID fastapi-dls.service; }
service_restarts() { bx systemctl show -P NRestarts fastapi-dls.service; }

# boot_storm: the path a site's guests take after a host reboots, 5000 guests
# at once on 443, each a whole journey, through the activated socket, under
# the unit's sandbox, system-call filter and watchdog (make bench runs the
# daemon by hand). Every journey must succeed; the last licence must come
# within 150 s and the daemon's resident memory stay under 100 MB (measured
# 2026-12-03 in a bookworm box on 2 cores: 5000 of 5000 in 51-54 s, peak
# 36-38 MB; with DLS_MAX_CONNECTIONS=4096, 904 failed and it peaked at
# 323 MB); the watchdog must not restart the service while both cores are
# busy; the unit must log nothing at error level; and the service's soft
# open-file limit must be its hard limit less one, as Go sets it at start
# with prlimit64 (the unit's filter refuses setrlimit, which Go does not use;
# the unit sets no LimitNOFILE=: 128 served and up to 4096 waiting need more
# than the soft 1024 systemd gives services, and the step wants room for them
# where the caller's own limit allows it). The load tool holds one
# descriptor per guest: where the caller's hard limit is lower, the storm is
# made smaller to fit, and says so, and fails below 1000 guests.
boot_storm() {
	pid=$(service_pid)
	restarts=$(service_restarts)
	[ "${pid:-0}" -gt 0 ]
	limits=$(bx grep 'open files' "/proc/$pid/limits")
	echo "$limits"
	soft=$(printf '%s\n' "$limits" | awk '{print $4}')
	hard=$(printf '%s\n' "$limits" | awk '{print $5}')
	[ "$soft" -ge $((hard - 1)) ] || { echo "the service's soft limit $soft was not raised to its hard limit $hard"; return 1; }
	nofile=$(bx sh -c 'ulimit -Hn')
	need=$((128 + 4096 + 128)) # served, waiting, and the daemon's own files
	if [ "$need" -gt $((nofile - 1)) ]; then need=$((nofile - 1)); fi
	[ "$soft" -ge "$need" ] || { echo "the service may open $soft files, want $need or more"; return 1; }
	guests=5000
	if [ "$nofile" -lt $((guests + 512)) ]; then
		guests=$((nofile - 512))
		echo "the load tool may open $nofile files: a storm of $guests guests, not 5000"
		[ "$guests" -ge 1000 ] || { echo "too few for a storm: raise the open-file limit"; return 1; }
	fi
	cursor=$(bx journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
	out=$(bxt 660 /usr/local/bin/dls-guest load -url https://127.0.0.1:443 -insecure \
		-mode storm -guests "$guests" -duration 300s -timeout 300s -idle-after 2s -pid "$pid" 2>&1) || {
		printf '%s\n' "$out" | tail -n 20
		return 1
	}
	printf '%s\n' "$out" | grep -E '^(server|result)'
	printf '%s\n' "$out" | grep -qE "^result mode=storm guests=$guests ops=$guests errors=0 "
	printf '%s\n' "$out" | awk '/^result / {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["last_licence_ms"] > 150000) { print "last licence after " v["last_licence_ms"] " ms, want <= 150000"; bad = 1 }
		if (v["rss_peak_mb"] > 100) { print "peak resident " v["rss_peak_mb"] " MB, want <= 100"; bad = 1 }
		found = 1
	} END { exit (bad || !found) }'
	echo "MainPID $(service_pid), NRestarts $(service_restarts)"
	[ "$(service_pid)" = "$pid" ]
	[ "$(service_restarts)" = "$restarts" ]
	bx journalctl -u fastapi-dls.service --after-cursor "$cursor" --no-pager -p err -o cat >"$logdir/storm-errors.txt"
	if [ -s "$logdir/storm-errors.txt" ]; then
		echo "error-level lines during the storm:"
		head -n 10 "$logdir/storm-errors.txt"
		return 1
	fi
	bxt 30 curl -sS --fail-with-body -k --max-time 20 https://127.0.0.1:443/-/health
	echo
}

# wait_active SECONDS waits until the service is active (READY=1 sent).
wait_active() {
	deadline=$(($(date +%s) + $1))
	while :; do
		st=$(bx systemctl is-active fastapi-dls.service || true)
		[ "$st" = active ] && return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "service is '$st' after $1 s"
			bx systemctl status --no-pager -n 20 fastapi-dls.service || true
			return 1
		fi
		sleep 0.5
	done
}

# find_inputs sets deb (the .deb under test) and guest_bin (the guest
# simulator), building bin/dls-guest when missing. Runs in the test's shell
# (a step would lose the variables), printing its own PASS/FAIL line.
find_inputs() {
	if find_inputs_ >"$logdir/inputs.log" 2>&1; then
		pass "find .deb and dls-guest ($(basename "$deb"))"
	else
		fail "find .deb and dls-guest" "log: $logdir/inputs.log"
		sed -e 's/^/    | /' "$logdir/inputs.log" | tail -n 15
		fatal="find .deb and dls-guest"
	fi
}
find_inputs_() {
	deb=${DEB:-}
	if [ -z "$deb" ]; then
		for f in "$repo"/dist/fastapi-dls_*.deb; do deb=$f; done
	fi
	if [ -z "$deb" ] || [ ! -f "$deb" ]; then echo "no .deb: run make deb or set DEB"; return 1; fi
	guest_bin=${DLS_GUEST:-$repo/bin/dls-guest}
	if [ ! -x "$guest_bin" ]; then
		(cd "$repo" && CGO_ENABLED=0 ${GO:-go} build -trimpath -o bin/dls-guest ./cmd/dls-guest)
		guest_bin=$repo/bin/dls-guest
	fi
	echo "deb: $deb"
	echo "guest: $guest_bin"
}

# note_first_box_build says on the console that the next step builds the box
# image, when it is not cached yet: minutes without other output otherwise.
note_first_box_build() {
	if [ -n "$local_mode" ]; then return 0; fi
	suite=${BOX_SUITE:-bookworm}
	if [ -f "${BOX_CACHE:-$repo/.cache/box}/$suite.tar" ]; then return 0; fi
	echo "box: building the $suite image first (debootstrap from the Debian archive: about 150 s; later runs reuse it)"
}

start_box() {
	if [ -n "$local_mode" ]; then return 0; fi
	"$BOX" build
	"$BOX" start "$box"
}

copy_inputs() {
	bx mkdir -p /root/pkg /root/guest /usr/local/bin
	bcp "$deb" /root/pkg/fastapi-dls.deb
	bcp "$guest_bin" /usr/local/bin/dls-guest
	bx chmod 0755 /usr/local/bin/dls-guest
}

# on_exit names a function of the test to run first at exit (cleanup).
on_exit=
finish() {
	rc=$?
	if [ -n "$on_exit" ]; then "$on_exit" || true; fi
	if [ -z "$local_mode" ] && "$BOX" status "$box" >/dev/null 2>&1; then
		bx journalctl -b --no-pager -o short-precise >"$logdir/journal.txt" 2>&1 || true
		bx journalctl -b -u fastapi-dls.service --no-pager -o verbose >"$logdir/journal-fastapi-dls.txt" 2>&1 || true
		"$BOX" stop "$box" >"$logdir/box-stop.log" 2>&1 || echo "warning: box stop failed, see $logdir/box-stop.log" >&2
		mv -f "${BOX_ROOT:-/var/tmp/fastapi-dls-box}/$box.console.log" "$logdir/console.log" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ]; then fail "harness" "exit status $rc"; fi
	echo "$passed passed, $failed failed"
	if [ $failed -eq 0 ] && [ $rc -eq 0 ]; then exit 0; fi
	exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM
