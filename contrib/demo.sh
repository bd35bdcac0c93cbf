#!/bin/sh
# Quick start on any machine with Python 3.10+: installs jailhooks into .venv
# and starts and stops two jails on the simulated FreeBSD host, showing what
# happened at each step.  Nothing outside this checkout and a temp dir changes.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/jailhooks ] || { "$PYTHON" -m venv .venv && .venv/bin/pip install -q .; }
state=$(mktemp -d "${TMPDIR:-/tmp}/jailhooks-demo.XXXXXX")
trap 'rm -rf "$state"' EXIT
{ printf '[host]\nmode = "simulated"\nstate_dir = "%s"\n\n' "$state"; cat contrib/demo.toml; } > "$state/jailhooks.toml"
jh() { echo "\$ jailhooks $*"; .venv/bin/jailhooks --config "$state/jailhooks.toml" "$@"; echo; }
for j in web mail; do mkdir -p "$state/jails/$j/etc"; done

echo "# jail(8) runs exec.prestart (all of a start's work, one process), then creates the jail"
echo "# with the parameters \`jailhooks install jail.conf web\` prints (ip4.nosaddrsel):"
jh run prestart web --path "$state/jails/web" --ip4 192.0.2.10
jh sim jail -c name=web path="$state/jails/web" ip4.addr=192.0.2.10 ip4.nosaddrsel persist
echo "# a jail that already runs adopts jailhooks with one command (facts from jls):"
jh sim jail -c name=mail path="$state/jails/mail" ip4.addr=192.0.2.20 persist
jh run start mail
jh status
echo "# what pf holds for jail mail (only mail may send SMTP):"
jh sim pfctl -a jailhooks/mail -s rules
echo "# what does the firewall do with a packet, and why? (on the live rules, proven at start)"
jh explain web tcp 198.51.100.1:25
jh explain mail tcp 198.51.100.1:25
echo "# a user of web (UID 100005, alice in its etc/passwd) tries to send mail; mail's postfix does:"
printf 'root:*:0:0::/root:/bin/sh\nalice:*:100005:100005::/home/alice:/bin/sh\n' > "$state/jails/web/etc/passwd"
jh sim send web tcp 198.51.100.1:25 --uid 100005
jh sim send mail tcp 198.51.100.1:25 --uid 125
echo "# what the rules logged (pflog), and who it was:"
jh log
echo "# inside the jail, pw useradd now picks UIDs from its block:"
cat "$state/jails/web/etc/pw.conf"; echo
echo "# stopping web: jail(8) runs exec.prestop, removes the jail, then exec.poststop:"
jh run prestop web
jh sim jail -r web
jh run poststop web
jh status --json
jh check
